"""Downstream datasets. This module currently holds the demo tasks; the readers for the real
few-shot and GUE files and the dataset registry arrive with the evaluation stage.

The demo tasks are written in the real on-disk formats (GeneMask few-shot TSV of quoted k-mer text;
GUE ``<group>/<task>/{train,dev,test}.csv`` of raw sequence), so the demo profile exercises the same
loaders as real data. Their labels depend on structure planted in the demo genome, so a model
pretrained on it has something to learn.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from . import paths
from .genome import _mutate, _random_dna, ensure_demo_genome, read_fasta
from .io import write_with
from .tokenizer import kmerize

DEMO_SEED = 7
#: Few-shot demo datasets: name → (sequence length, classes). Shots are examples per class.
DEMO_FEWSHOT = {"Demo-prom": (70, 2), "Demo-motif": (60, 3)}
DEMO_SHOTS = (10, 50, 100)
DEMO_TEST_PER_CLASS = 300
DEMO_GUE = {"demo/prom": (70, 2), "demo/motif": (60, 3)}
DEMO_GUE_SPLITS = {"train": 400, "dev": 100, "test": 200}  # per class


def _promoter_windows(rng: np.random.Generator, length: int, n_per_class: int) -> tuple[list[str], list[int]]:
    """Label 1: windows ending 10 nt after a planted TSS (they hold TATA/CCAAT/GC-box/Inr/BRE);
    label 0: windows of the same genome at least 500 nt from any TSS. A/C/G/T only."""
    fasta = ensure_demo_genome()
    genome = {r.name: r.seq for r in read_fasta(fasta)}
    features = pd.read_csv(fasta.with_name("demo_genome_features.tsv"), sep="\t")
    tss = features[features.kind == "tss"]
    pos: list[str] = []
    for rec, start in tss[["record", "start"]].itertuples(index=False):
        window = genome[rec][start + 10 - length : start + 10]
        if set(window) <= set("ACGT"):
            pos.append(window)
    rng.shuffle(pos)
    neg: list[str] = []
    names = sorted(genome)
    far = {r: np.sort(tss.start[tss.record == r].to_numpy()) for r in names}
    while len(neg) < len(pos):
        rec = names[int(rng.integers(len(names)))]
        s = int(rng.integers(0, len(genome[rec]) - length))
        i = np.searchsorted(far[rec], s)
        near = [far[rec][j] for j in (i - 1, i) if 0 <= j < len(far[rec])]
        window = genome[rec][s : s + length]
        if all(abs(t - s) > 500 for t in near) and set(window) <= set("ACGT"):
            neg.append(window)
    n = min(n_per_class, len(pos))
    return pos[:n] + neg[:n], [1] * n + [0] * n


def _motif_windows(rng: np.random.Generator, length: int, n_per_class: int) -> tuple[list[str], list[int]]:
    """3 classes on random background: 0 none, 1 a copy of motif A, 2 a copy of motif B
    (8 % point mutations, random position), like a toy splice-site task."""
    motifs = [_random_dna(rng, 10, 0.5) for _ in range(2)]
    seqs, labels = [], []
    for label in range(3):
        for _ in range(n_per_class):
            seq = _random_dna(rng, length, 0.41)
            if label:
                site = _mutate(rng, motifs[label - 1], 0.08)
                s = int(rng.integers(0, length - len(site)))
                seq[s : s + len(site)] = site
            seqs.append(seq.tobytes().decode())
            labels.append(label)
    return seqs, labels


_MAKERS = {"Demo-prom": _promoter_windows, "demo/prom": _promoter_windows,
           "Demo-motif": _motif_windows, "demo/motif": _motif_windows}


def _write_fewshot_tsv(path: Path, seqs: list[str], labels: list[int], quoted: bool) -> None:
    """GeneMask Data-B format: k-mer text and label; the train files quote header and fields."""
    quoting = csv.QUOTE_ALL if quoted else csv.QUOTE_NONE
    frame = pd.DataFrame({"sequence": [kmerize(s) for s in seqs], "label": labels})
    write_with(path, lambda tmp: frame.to_csv(tmp, sep="\t", index=False, quoting=quoting))


def ensure_demo_tasks() -> Path:
    """Generate the demo tasks once under ``paths.demo_tasks_dir()`` and return that folder:
    ``fewshot/<Dataset>/<shots>/train.tsv`` + ``fewshot/<Dataset>/test.tsv`` and
    ``gue/<group>/<task>/{train,dev,test}.csv``. Disjoint splits, deterministic."""
    root = paths.demo_tasks_dir()
    done = root / "COMPLETE"
    if done.exists():
        return root
    rng = np.random.default_rng(DEMO_SEED)
    for name, (length, n_classes) in DEMO_FEWSHOT.items():
        n_train = sum(DEMO_SHOTS)
        seqs, labels = _MAKERS[name](rng, length, n_train + DEMO_TEST_PER_CLASS)
        per_class = len(seqs) // n_classes
        by_class = [list(zip(seqs[c * per_class : (c + 1) * per_class], labels[c * per_class : (c + 1) * per_class]))
                    for c in range(n_classes)]
        test = [row for rows in by_class for row in rows[:DEMO_TEST_PER_CLASS]]
        _write_fewshot_tsv(root / "fewshot" / name / "test.tsv", *map(list, zip(*test)), quoted=False)
        offset = DEMO_TEST_PER_CLASS
        for shots in DEMO_SHOTS:  # disjoint, not nested, as in the released files
            rows = [row for r in by_class for row in r[offset : offset + shots]]
            order = rng.permutation(len(rows))
            rows = [rows[i] for i in order]
            _write_fewshot_tsv(root / "fewshot" / name / str(shots) / "train.tsv", *map(list, zip(*rows)), quoted=True)
            offset += shots
    for name, (length, n_classes) in DEMO_GUE.items():
        total = sum(DEMO_GUE_SPLITS.values())
        seqs, labels = _MAKERS[name](rng, length, total)
        frame = pd.DataFrame({"sequence": seqs, "label": labels}).sample(frac=1.0, random_state=int(rng.integers(1 << 31)))
        start = 0
        for split, per_class in DEMO_GUE_SPLITS.items():
            part = frame.iloc[start : start + per_class * n_classes]
            start += per_class * n_classes
            write_with(root / "gue" / name / f"{split}.csv", lambda tmp, part=part: part.to_csv(tmp, index=False))
    done.write_text("demo tasks complete\n")
    return root
