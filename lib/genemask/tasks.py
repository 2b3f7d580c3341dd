"""Downstream datasets: readers for the real file formats, the registry of every dataset the papers
evaluate on, and the demo tasks.

The registry names each dataset (few-shot ``prom-core``, ``prom-300``, ``cohn-enh``, ``splice-40``,
``silencer``; GUE tasks by their path such as ``EMP/H3`` or ``prom/prom_core_all``; demo tasks
``demo-prom``, ``demo-motif``, ``demo/prom``, ``demo/motif``) with its length, classes, splits and
provenance, and says what the shared data lacks and which substitute is used instead, so that no
split is ever silently replaced (DESIGN §3.4, papers.md §4, data/MANIFEST.md).

The demo tasks are written in the real on-disk formats (GeneMask few-shot TSV of quoted k-mer text;
GUE ``<group>/<task>/{train,dev,test}.csv`` of raw sequence), so the demo profile exercises the same
loaders as real data. Their labels depend on structure planted in the demo genome, so a model
pretrained on it has something to learn.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import paths
from .genome import _mutate, _random_dna, check_integer, ensure_demo_genome, read_fasta, require_regular_file
from .io import write_with
from .tokenizer import kmerize, kmers_to_seq

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


# --------------------------------------------------------------------------------------------------
# Readers. Every reader returns a frame of raw upper-case DNA (`sequence`) and integer `label`, and
# names the file and line of anything it cannot read.
# --------------------------------------------------------------------------------------------------

class TaskDataError(ValueError):
    """A downstream data file that cannot be read as (sequence, label) rows."""


class DataUnavailable(LookupError):
    """A split or shot that the shared data does not hold (a documented gap, not bad input).

    Raised only for gaps the registry documents (``unavailable_shots``, ``GueTask.missing``); a
    file the registry lists but that is absent or unreadable is a :class:`TaskDataError`, so a
    deleted split fails its run instead of being skipped like a gap."""


_LABEL = re.compile(r"^-?\d+$")
_DNA = re.compile(r"^[ACGTNacgtn]+$")


def _strip_quotes(text: str) -> str:
    text = text.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _finish(path: Path, seqs: list[str], labels: list[str], first_line: int, n_classes: int | None) -> pd.DataFrame:
    """Validate rows (labels integer and in range; sequences DNA or overlapping k-mer text) and turn
    k-mer text into raw DNA, naming file and line of the first bad row."""
    out_seqs, out_labels = [], []
    for i, (seq, label) in enumerate(zip(seqs, labels)):
        line = first_line + i
        label = _strip_quotes(label)
        if not _LABEL.match(label):
            raise TaskDataError(f"{path}:{line}: label {label!r} is not an integer")
        value = int(label)
        if value < 0 or (n_classes is not None and value >= n_classes):
            allowed = f"0..{n_classes - 1}" if n_classes is not None else ">= 0"
            raise TaskDataError(f"{path}:{line}: label {value} out of range {allowed}")
        seq = _strip_quotes(seq)
        if " " in seq:
            try:
                seq = kmers_to_seq(seq)
            except ValueError as err:
                raise TaskDataError(f"{path}:{line}: {err}") from None
        if not _DNA.match(seq):
            shown = seq if len(seq) <= 30 else seq[:30] + "…"
            raise TaskDataError(f"{path}:{line}: sequence {shown!r} is neither DNA nor overlapping k-mer text")
        out_seqs.append(seq.upper())
        out_labels.append(value)
    if not out_seqs:
        raise TaskDataError(f"{path}: no data rows")
    return pd.DataFrame({"sequence": out_seqs, "label": np.asarray(out_labels, dtype=np.int64)})


def _read_text(path: Path) -> str:
    require_regular_file(path, "split file", TaskDataError)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise TaskDataError(f"{path}: no such file (a split the registry lists: deleted or moved? "
                            "is $GENEMASK_DATA the data folder?)") from None
    except IsADirectoryError:
        raise TaskDataError(f"{path}: is a directory, not a split file") from None
    except PermissionError:
        raise TaskDataError(f"{path}: not readable (permission denied)") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise TaskDataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def read_labelled_tsv(path: str | Path, n_classes: int | None = None) -> pd.DataFrame:
    """A GeneMask/DNABERT fine-tuning TSV: header ``sequence<TAB>label``, rows of space-separated
    overlapping k-mers (or raw DNA) and an integer label.

    Tolerates the quirks of the released files (MANIFEST): quoted header and fields (few-shot train
    files), CRLF line ends and a header whose tab is two spaces (DNABERT's old prom-core dev).
    """
    path = Path(path)
    lines = _read_text(path).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise TaskDataError(f"{path}: empty file")
    header = [_strip_quotes(h).lower() for h in re.split(r"\t| {2,}", lines[0].strip())]
    if header != ["sequence", "label"]:
        raise TaskDataError(f"{path}:1: expected header 'sequence<TAB>label', got {lines[0].strip()[:60]!r}")
    seqs, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.strip().split("\t")
        if len(fields) != 2:
            raise TaskDataError(f"{path}:{number}: expected 2 tab-separated fields (sequence, label), got {len(fields)}")
        seqs.append(fields[0])
        labels.append(fields[1])
    return _finish(path, seqs, labels, 2, n_classes)


def read_gue_csv(path: str | Path, n_classes: int | None = None) -> pd.DataFrame:
    """A GUE split: CSV with header ``sequence,label`` and raw DNA (DNABERT-2's layout)."""
    path = Path(path)
    rows = list(csv.reader(_read_text(path).splitlines()))
    while rows and not any(field.strip() for field in rows[-1]):
        rows.pop()
    if not rows:
        raise TaskDataError(f"{path}: empty file")
    if [h.strip().lower() for h in rows[0]] != ["sequence", "label"]:
        raise TaskDataError(f"{path}:1: expected header 'sequence,label', got {','.join(rows[0])[:60]!r}")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise TaskDataError(f"{path}:{number}: expected 2 comma-separated fields (sequence, label), got {len(row)}")
    return _finish(path, [r[0] for r in rows[1:]], [r[1] for r in rows[1:]], 2, n_classes)


def read_split(path: str | Path, n_classes: int | None = None) -> pd.DataFrame:
    """Read any supported split file by its suffix (``.tsv`` few-shot/DNABERT, ``.csv`` GUE)."""
    path = Path(path)
    if path.suffix == ".csv":
        return read_gue_csv(path, n_classes)
    if path.suffix == ".tsv":
        return read_labelled_tsv(path, n_classes)
    raise TaskDataError(f"{path}: unknown split format {path.suffix!r} (expected .tsv or .csv)")


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

FEWSHOT_ROOT = "fewshot/genemask/Data-B_fewshot-task-datasets"
SHOTS = (10, 50, 100, 500, 1000)


@dataclass(frozen=True)
class FewShotDataset:
    """One few-shot dataset: where its released training files and test set are, and what is missing.

    ``train_files`` maps the released shot folder to a file (relative to the data root); a file may
    pool several runs (more than ``shots`` rows per class), from which each seed samples its own set.
    ``test_substitute`` says, when the released test set is absent, what is used instead.
    """

    name: str
    length: str
    n_classes: int
    source: str
    train_files: dict[int, str]
    test_file: str | None
    test_substitute: str = ""
    missing: str = ""
    demo: bool = False
    #: shots whose training file exists in the release but not in the shared data: skipped, stated
    unavailable_shots: tuple[int, ...] = ()

    @property
    def kind(self) -> str:
        return "fewshot"

    def root(self) -> Path:
        return ensure_demo_tasks() if self.demo else paths.data_dir()


@dataclass(frozen=True)
class GueTask:
    """One GUE dataset with DNABERT-2's per-task budget (papers.md §2.4; CM-GEMS's effective batch 32)."""

    name: str
    length: str
    n_classes: int
    species: str
    epochs: float
    max_length: int  # tokens, [CLS]/[SEP] included (DNABERT-2's model_max_length)
    eval_steps: int
    warmup_steps: int
    max_steps: int | None = None
    learning_rate: float = 3e-5
    batch_size: int = 32
    metric: str = "mcc"
    missing: tuple[str, ...] = ()  # splits absent from the shared data
    demo: bool = False

    @property
    def kind(self) -> str:
        return "gue"

    def root(self) -> Path:
        return (ensure_demo_tasks() if self.demo else paths.data_dir()) / "gue" / self.name


_B = FEWSHOT_ROOT
FEWSHOT: dict[str, FewShotDataset] = {
    "prom-core": FewShotDataset(
        "prom-core", "70 bp", 2, "GeneMask Data-B Prom-core (DNABERT core promoters, EPDnew human; 1 = promoter)",
        {k: f"{_B}/Prom-core/{k}/train.tsv" for k in SHOTS}, f"{_B}/Prom-core/test.tsv"),
    "prom-300": FewShotDataset(
        "prom-300", "300 bp", 2, "GeneMask Data-B Prom-300 (DNABERT promoters −249…+50, EPDnew human; 1 = promoter)",
        {k: f"{_B}/Prom-300/{k}/train.tsv" for k in SHOTS}, None,
        test_substitute="gue/prom/prom_300_all/test.csv",
        missing="Prom-300/test.tsv is not in the shared data (> 4 MB); substitute: GUE prom_300_all test "
                "(same EPDnew 300-bp task and test size 5,920), training sequences removed from it"),
    "cohn-enh": FewShotDataset(
        "cohn-enh", "500 bp", 2, "GeneMask Data-B Cohn-enh (Genomic Benchmarks human_enhancers_cohn; 1 = enhancer)",
        {k: f"{_B}/Cohn-enh/{k}/train.tsv" for k in (10, 50, 100, 500)}, None,
        test_substitute="other-shot-files",
        missing="Cohn-enh/test.tsv and 1000/train.tsv are not in the shared data (> 4 MB; the Genomic Benchmarks "
                "copy holds coordinates only); substitute test: the other shots' released training files (disjoint "
                "samples of the same data), training sequences removed — not the paper's test set",
        unavailable_shots=(1000,)),
    "splice-40": FewShotDataset(
        "splice-40", "40 bp", 3, "GeneMask Data-B Splice-40 (3 classes; provenance undocumented)",
        {10: f"{_B}/Splice-40/10/train_splice40_10.tsv", 50: f"{_B}/Splice-40/50/train_splice40_50.tsv",
         100: f"{_B}/Splice-40/100/train_splice40_100.tsv", 500: f"{_B}/Splice-40/500/train_splice40_500.tsv"},
        f"{_B}/Splice-40/test.tsv",
        missing="train files pool 10 runs (10/ holds 100 per class): each seed samples its own k per class; "
                "1000/ is not in the shared data (> 4 MB): 1000-shot sets are sampled from the 500/ pool"),
    "silencer": FewShotDataset(
        "silencer", "101–299 bp", 2, "CM-GEMS silencer (SilencerDB human high-throughput ≤ 300 bp; 0 = synthetic negative)",
        {10: "fewshot/silencer/10/train.tsv", 50: "fewshot/silencer/50/train.tsv"}, "fewshot/silencer/10/dev.tsv",
        missing="released shots 10 and 50 only, as pools of 10 runs: each seed samples its own k per class; "
                "100 and 500 are sampled from the 50/ pool (500 per class); 1000 is skipped; the test set is the "
                "released dev.tsv (the authors' held-out 10 %)",
        unavailable_shots=(1000,)),
    "demo-prom": FewShotDataset(
        "demo-prom", "70 bp", 2, "demo: windows ending at planted TSSs of the demo genome vs far windows",
        {k: f"fewshot/Demo-prom/{k}/train.tsv" for k in DEMO_SHOTS}, "fewshot/Demo-prom/test.tsv", demo=True),
    "demo-motif": FewShotDataset(
        "demo-motif", "60 bp", 3, "demo: random background with no motif / motif A / motif B",
        {k: f"fewshot/Demo-motif/{k}/train.tsv" for k in DEMO_SHOTS}, "fewshot/Demo-motif/test.tsv", demo=True),
}

_NO_TRAIN = ("train",)
GUE: dict[str, GueTask] = {
    **{f"EMP/{m}": GueTask(f"EMP/{m}", "500 bp", 2, "yeast", 3, 512, 200, 50, missing=_NO_TRAIN)
       for m in ("H3", "H3K14ac", "H3K36me3", "H3K4me1", "H3K4me2", "H3K4me3", "H3K79me3", "H3K9ac", "H4", "H4ac")},
    **{f"prom/prom_core_{v}": GueTask(f"prom/prom_core_{v}", "70 bp", 2, "human", 10 if v == "tata" else 4, 80,
                                      200 if v == "tata" else 400, 50) for v in ("all", "notata", "tata")},
    **{f"prom/prom_300_{v}": GueTask(f"prom/prom_300_{v}", "300 bp", 2, "human", 10 if v == "tata" else 4, 310,
                                     200 if v == "tata" else 400, 50, missing=() if v == "tata" else _NO_TRAIN)
       for v in ("all", "notata", "tata")},
    **{f"tf/{i}": GueTask(f"tf/{i}", "101 bp", 2, "human", 3, 110, 200, 30) for i in range(5)},
    **{f"mouse/{i}": GueTask(f"mouse/{i}", "101 bp", 2, "mouse", 5, 110, 200, 30, max_steps=1000,
                             missing=_NO_TRAIN if i == 1 else ()) for i in range(5)},
    "splice/reconstructed": GueTask("splice/reconstructed", "400 bp", 3, "human", 5, 410, 200, 50, missing=_NO_TRAIN),
    "virus/covid": GueTask("virus/covid", "1000 bp", 9, "virus", 9, 1024, 200, 50, batch_size=64, metric="f1",
                           missing=("train", "dev", "test")),
    # Demo tasks: a budget a tiny model learns something from in seconds.
    "demo/prom": GueTask("demo/prom", "70 bp", 2, "demo", 3, 80, 25, 10, learning_rate=5e-4, demo=True),
    "demo/motif": GueTask("demo/motif", "60 bp", 3, "demo", 3, 80, 25, 10, learning_rate=5e-4, demo=True),
}


def known_datasets() -> list[str]:
    return sorted(FEWSHOT) + list(GUE)


def get_dataset(name: str) -> FewShotDataset | GueTask:
    """The registry entry of a dataset name; unknown names list every known one."""
    if name in FEWSHOT:
        return FEWSHOT[name]
    if name in GUE:
        return GUE[name]
    lowered = {n.lower(): n for n in known_datasets()}
    hint = f" (did you mean {lowered[name.lower()]!r}?)" if isinstance(name, str) and name.lower() in lowered else ""
    raise ValueError(f"unknown dataset {name!r}{hint}; known: {', '.join(known_datasets())}")


def registry_frame() -> pd.DataFrame:
    """One row per registered dataset: what it is, which splits the shared data holds and are used,
    and what is missing or substituted."""
    rows = []
    for d in FEWSHOT.values():
        test = "/".join(d.test_file.split("/")[-2:]) if d.test_file else (
            "other shots' train files" if d.test_substitute == "other-shot-files" else d.test_substitute)
        rows.append({"dataset": d.name, "kind": "few-shot", "length": d.length, "classes": d.n_classes,
                     "splits used": f"train: shots {', '.join(map(str, sorted(d.train_files)))}; test: {test}",
                     "missing / substitute": d.missing or "—", "source": d.source})
    for t in GUE.values():
        present = [s for s in ("train", "dev", "test") if s not in t.missing]
        if "test" in t.missing:
            note = "no split in the shared data (> 4 MB): skipped"
        elif "train" in t.missing:
            note = "train.csv not in the shared data (> 4 MB): skipped, or with missing_train='dev' trained on 80 % of dev"
        else:
            note = "—"
        rows.append({"dataset": t.name, "kind": "GUE", "length": t.length, "classes": t.n_classes,
                     "splits used": ", ".join(present) or "none", "missing / substitute": note,
                     "source": f"GUE ({t.species}), metric {t.metric.upper()}"})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Splits, with provenance and leakage removal
# --------------------------------------------------------------------------------------------------

@dataclass
class Split:
    """Training, optional dev, and test frames of one run, with where each came from."""

    dataset: str
    train: pd.DataFrame
    test: pd.DataFrame
    dev: pd.DataFrame | None = None
    n_classes: int = 2
    info: dict = field(default_factory=dict)


def remove_overlap(reference: pd.DataFrame, other: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``other`` without the rows whose sequence occurs in ``reference`` (leakage), and how many went."""
    shared = other["sequence"].isin(set(reference["sequence"]))
    return other.loc[~shared].reset_index(drop=True), int(shared.sum())


def remove_leakage(train: pd.DataFrame, split: pd.DataFrame, n_classes: int, where: str,
                   every_class: bool = True) -> tuple[pd.DataFrame, int]:
    """:func:`remove_overlap` of an evaluation split against the training rows, refusing a split the
    removal empties or leaves without a class (``every_class``): its rows were duplicates of training
    rows, which a bare "no row of class 0" would not say. Smaller removals are returned, to report."""
    kept, removed = remove_overlap(train, split)
    absent = sorted(set(range(n_classes)) - set(kept["label"].unique().tolist()))
    if removed and (kept.empty or (every_class and absent)):
        left = "no row" if kept.empty else f"{len(kept)} row(s) and no row of class {absent[0]}"
        raise TaskDataError(f"{where}: {removed} of its {len(split)} rows were removed as duplicates of training rows "
                            f"(leakage), leaving {left}; this split cannot score the run")
    return kept, removed


def sample_per_class(frame: pd.DataFrame, shots: int, seed: int, where: str = "") -> pd.DataFrame:
    """``shots`` rows of every class, drawn with ``seed`` and shuffled (one few-shot training set)."""
    check_integer("shots", shots)
    check_integer("seed", seed, minimum=0)
    counts = frame["label"].value_counts().sort_index()
    short = counts[counts < shots]
    if len(short):
        raise ValueError(f"{where}shots={shots} per class, but class {int(short.index[0])} has only {int(short.iloc[0])} "
                         f"example(s) (per class: {counts.to_dict()})")
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(frame["label"].to_numpy() == c), shots, replace=False) for c in counts.index]
    rows = np.concatenate(picks)
    return frame.iloc[rng.permutation(rows)].reset_index(drop=True)


_CACHE: dict[tuple[str, int | None], pd.DataFrame] = {}


def _check_all_classes(frame: pd.DataFrame, n_classes: int, where: str) -> None:
    """A training or test set must hold every class: one without a class trains or scores a model
    on a different task without a word (a truncated or filtered file)."""
    absent = sorted(set(range(n_classes)) - set(frame["label"].unique().tolist()))
    if absent:
        raise TaskDataError(f"{where}: no row of class {absent[0]} (of 0..{n_classes - 1}); "
                            f"rows per class: {frame['label'].value_counts().sort_index().to_dict()}")


def _read_cached(path: Path, n_classes: int | None) -> pd.DataFrame:
    key = (str(path), n_classes)
    if key not in _CACHE:
        _CACHE[key] = read_split(path, n_classes)
    return _CACHE[key]


def fewshot_split(name: str, shots: int, seed: int = 0, max_test: int | None = None, resample: bool = False,
                  validation: int | None = None) -> Split:
    """The training set of ``shots`` examples per class for ``seed``, and the test set, of a few-shot dataset.

    Training file: the released file for ``shots``, else the smallest released file with at least
    ``shots`` per class (stated as a substitute). A file with more than ``shots`` per class pools
    several runs; each seed samples its own set from it. Test rows whose sequence occurs anywhere in
    the training file are removed (reported in ``info['test_overlap_removed']``).

    ``resample``: every seed draws its own ``shots`` per class from the union of the released
    training files, so that seeds vary the training examples even where only one set per shot was
    released (needed by a deterministic protocol such as the linear probe). Not possible where the
    other shots' files are the test substitute (Cohn-enh): there the released set is kept, stated.

    ``validation``: also hold out that many rows per class of the training pool that the training
    set does not use, as ``dev`` (drawn with the seed): a score for choosing a budget (a learning-rate
    pilot) that never looks at the test set. A pool with too few spare rows raises
    :class:`DataUnavailable` (the dataset is skipped, stated).
    """
    d = get_dataset(name)
    if not isinstance(d, FewShotDataset):
        raise ValueError(f"dataset {name!r} is a GUE task; few-shot datasets: {', '.join(sorted(FEWSHOT))}")
    if not isinstance(shots, (int, np.integer)) or isinstance(shots, bool) or shots < 1:
        raise ValueError(f"shots={shots!r}: expected a positive integer (examples per class)")
    check_integer("seed", seed, minimum=0)
    check_integer("max_test", max_test, optional=True)
    check_integer("validation", validation, optional=True)
    if shots in d.unavailable_shots:
        raise DataUnavailable(f"{name}: {shots}-shot training data is not in the shared data ({d.missing})")
    root = d.root()
    info: dict = {"dataset": name, "shots": int(shots), "seed": int(seed)}
    chosen = shots if shots in d.train_files else None
    if chosen is None:  # the nearest larger released file, else the largest pool that has enough per class
        enough = [k for k in sorted(d.train_files)
                  if _read_cached(root / d.train_files[k], d.n_classes)["label"].value_counts().min() >= shots]
        larger = [k for k in enough if k > shots]
        chosen = larger[0] if larger else (enough[-1] if enough else None)
    if chosen is None:
        largest = max(d.train_files)
        counts = _read_cached(root / d.train_files[largest], d.n_classes)["label"].value_counts().sort_index().to_dict()
        raise ValueError(f"{name}: shots={shots} per class, more than any released training file has "
                         f"(largest: {d.train_files[largest]} with {counts} per class)")
    train_path = root / d.train_files[chosen]
    pool = _read_cached(train_path, d.n_classes)
    per_class = int(pool["label"].value_counts().min())
    info["train_file"] = d.train_files[chosen]
    info["train_substitute"] = "" if chosen == shots else f"no {shots}-shot file released/shared: sampled from the {chosen}/ file"
    if resample and d.test_substitute != "other-shot-files":
        pool = pd.concat([_read_cached(root / f, d.n_classes) for f in d.train_files.values()])
        pool = pool.drop_duplicates("sequence").reset_index(drop=True)
        train = sample_per_class(pool, shots, seed, where=f"{name} (union of released training files): ")
        info["train_file"] = " + ".join(d.train_files[k] for k in sorted(d.train_files))
        info["train_sampling"] = f"{shots} per class sampled with seed {seed} from the union of the released training files ({len(pool)} rows)"
    elif per_class > shots or pool["label"].value_counts().max() > shots:
        train = sample_per_class(pool, shots, seed, where=f"{train_path}: ")
        info["train_sampling"] = f"{shots} per class sampled with seed {seed} from a pool of {len(pool)} rows"
    else:
        train = pool.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        info["train_sampling"] = "the released set (every seed trains on the same rows in its own order)" + (
            "; not resampled: the other shots' files are the test set" if resample else "")
    if d.test_file is not None:
        test = _read_cached(root / d.test_file, d.n_classes)
        info["test_file"] = d.test_file
        info["test_substitute"] = ""
    elif d.test_substitute == "other-shot-files":
        others = [_read_cached(root / f, d.n_classes) for k, f in sorted(d.train_files.items()) if k != chosen]
        test = pd.concat(others).drop_duplicates("sequence").reset_index(drop=True)
        info["test_file"] = " + ".join(f for k, f in sorted(d.train_files.items()) if k != chosen)
        info["test_substitute"] = d.missing
    else:
        test = _read_cached(root / d.test_substitute, d.n_classes)
        info["test_file"] = d.test_substitute
        info["test_substitute"] = d.missing
    _check_all_classes(pool, d.n_classes, f"{name}: training file {info['train_file']}")
    test, removed = remove_leakage(pool, test, d.n_classes, f"{name}: test set {info['test_file']}")
    _check_all_classes(test, d.n_classes, f"{name}: test set {info['test_file']}")
    info["test_overlap_removed"] = removed
    if max_test is not None and len(test) > max_test:
        test = test.sample(n=max_test, random_state=0).sort_index().reset_index(drop=True)
        info["test_subsampled"] = max_test
    dev = None
    if validation is not None:
        spare, _ = remove_overlap(train, pool)
        spare_counts = spare["label"].value_counts().reindex(range(d.n_classes), fill_value=0)
        if spare_counts.min() < validation:
            raise DataUnavailable(f"{name}: {shots}-shot training pool {info['train_file']} has fewer than "
                                  f"validation={validation} spare rows per class beside the training set "
                                  f"(per class: {spare_counts.to_dict()})")
        dev = sample_per_class(spare, validation, seed + VALIDATION_SEED_OFFSET, where=f"{name} validation: ")
        info["n_validation"] = len(dev)
        info["validation_sampling"] = (f"{validation} per class of the training pool's rows outside the training set, "
                                       f"drawn with seed {seed + VALIDATION_SEED_OFFSET}; disjoint from the test set")
    info["n_train"], info["n_test"] = len(train), len(test)
    return Split(name, train, test, dev, d.n_classes, info)


#: Added to a run's seed to draw its validation rows: the same seed would pick the training rows' draw order.
VALIDATION_SEED_OFFSET = 10_000


def gue_split(name: str, missing_train: str = "skip", seed: int = 0, max_eval: int | None = None) -> Split:
    """Train, dev and test of a GUE task, with dev/test rows that also occur in train removed.

    ``max_eval`` caps dev and test at that many rows each, a fixed random subset (a reduced budget).

    ``missing_train``: what to do where the shared data lacks train.csv — ``"skip"`` raises
    :class:`DataUnavailable`; ``"dev"`` trains on a stratified 80 % of dev and selects on the rest
    (stated in ``info['substitute']``; such numbers are not comparable with published ones).
    """
    t = get_dataset(name)
    if not isinstance(t, GueTask):
        raise ValueError(f"dataset {name!r} is a few-shot dataset; GUE tasks: {', '.join(GUE)}")
    if missing_train not in ("skip", "dev"):
        raise ValueError(f"missing_train={missing_train!r}: expected 'skip' or 'dev'")
    check_integer("seed", seed, minimum=0)
    check_integer("max_eval", max_eval, optional=True)
    if "test" in t.missing:
        raise DataUnavailable(f"{name}: no split of this task is in the shared data (files > 4 MB): skipped")
    root = t.root()
    info: dict = {"task": name, "substitute": ""}
    test = _read_cached(root / "test.csv", t.n_classes)
    dev = _read_cached(root / "dev.csv", t.n_classes)
    if "train" in t.missing:
        if missing_train == "skip":
            raise DataUnavailable(f"{name}: train.csv is not in the shared data (> 4 MB): skipped "
                                  "(missing_train='dev' trains on 80 % of dev instead)")
        from sklearn.model_selection import train_test_split

        train, dev = train_test_split(dev, test_size=0.2, stratify=dev["label"], random_state=seed)
        train, dev = train.reset_index(drop=True), dev.reset_index(drop=True)
        info["substitute"] = "train.csv absent: trained on a stratified 80 % of dev.csv, selected on the other 20 %"
    else:
        train = _read_cached(root / "train.csv", t.n_classes)
    test, info["test_overlap_removed"] = remove_leakage(train, test, t.n_classes, f"{name}: test split under {root}")
    # dev selects the best checkpoint by its loss: emptied, the selection would quietly be off
    dev, info["dev_overlap_removed"] = remove_leakage(train, dev, t.n_classes, f"{name}: dev split under {root}",
                                                      every_class=False)
    for split_name, frame in (("train", train), ("test", test)):
        _check_all_classes(frame, t.n_classes, f"{name}: {split_name} split under {root}")
    if max_eval is not None:
        if len(test) > max_eval:
            test = test.sample(n=max_eval, random_state=0).sort_index().reset_index(drop=True)
        if len(dev) > max_eval:
            dev = dev.sample(n=max_eval, random_state=0).sort_index().reset_index(drop=True)
        info["eval_subsampled"] = int(max_eval)
    info.update(n_train=len(train), n_dev=len(dev), n_test=len(test))
    return Split(name, train, test, dev, t.n_classes, info)


def available_gue_tasks(missing_train: str = "skip", include_demo: bool = False) -> list[str]:
    """GUE tasks this data directory can run: train (or, with ``missing_train='dev'``, dev) and test
    present, as the registry documents the shared data. A data folder without ``gue/`` has none;
    one with ``gue/`` that lacks a split the registry lists is refused, naming the file (a deleted
    split must not quietly shrink the task list)."""
    if missing_train not in ("skip", "dev"):
        raise ValueError(f"missing_train={missing_train!r}: expected 'skip' or 'dev'")
    out = []
    for name, t in GUE.items():
        if t.demo and not include_demo or "test" in t.missing:
            continue
        if "train" in t.missing and missing_train == "skip":
            continue
        root = t.root()
        if not t.demo and not (paths.data_dir() / "gue").is_dir():
            continue
        needed = ["dev.csv", "test.csv"] + ([] if "train" in t.missing else ["train.csv"])
        absent = [f for f in needed if not (root / f).is_file()]
        if absent:
            raise TaskDataError(f"{root / absent[0]}: no such file, but the registry lists it in the shared data "
                                f"(deleted or moved? MANIFEST.md lists every file; or name the tasks to run)")
        out.append(name)
    return out


#: Known cross-dataset overlaps worth auditing: (label, file a, file b), relative to the data dir.
AUDIT_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("DNABERT prom-core dev vs GUE prom_core_all train", "dnabert/examples/sample_data/ft/prom-core/6/dev.tsv",
     "gue/prom/prom_core_all/train.csv"),
    ("Prom-core few-shot test vs GUE prom_core_all train", f"{_B}/Prom-core/test.tsv", "gue/prom/prom_core_all/train.csv"),
    ("Prom-core 1000-shot train vs Prom-core test", f"{_B}/Prom-core/1000/train.tsv", f"{_B}/Prom-core/test.tsv"),
    ("Prom-300 1000-shot train vs GUE prom_300_all test", f"{_B}/Prom-300/1000/train.tsv", "gue/prom/prom_300_all/test.csv"),
    ("Prom-300 1000-shot train vs GUE prom_300_all dev", f"{_B}/Prom-300/1000/train.tsv", "gue/prom/prom_300_all/dev.csv"),
    ("GUE prom_core_all train vs its test", "gue/prom/prom_core_all/train.csv", "gue/prom/prom_core_all/test.csv"),
)


def overlap_audit(pairs=AUDIT_PAIRS) -> pd.DataFrame:
    """Rows of file a whose sequence also occurs in file b, for pairs of real files (absent files skipped)."""
    rows = []
    root = paths.data_dir()
    for label, a, b in pairs:
        if not ((root / a).exists() and (root / b).exists()):
            continue
        fa, fb = _read_cached(root / a, None), _read_cached(root / b, None)
        shared = fa["sequence"].isin(set(fb["sequence"]))
        rows.append({"pair": label, "rows_a": len(fa), "rows_b": len(fb), "rows_a_in_b": int(shared.sum()),
                     "unique_sequences_a_in_b": int(fa.loc[shared, "sequence"].nunique())})
    return pd.DataFrame(rows)
