"""Demo tasks are in the real on-disk formats, balanced, disjoint, and deterministic."""
import csv

import pandas as pd

from genemask import tasks
from genemask.tokenizer import kmers_to_seq


def test_demo_tasks_formats():
    root = tasks.ensure_demo_tasks()
    train = root / "fewshot" / "Demo-prom" / "10" / "train.tsv"
    assert train.read_text().splitlines()[0] == '"sequence"\t"label"'  # quoted, like Data-B train files
    frame = pd.read_csv(train, sep="\t", quoting=csv.QUOTE_ALL)
    assert frame.label.value_counts().to_dict() == {0: 10, 1: 10}
    assert all(len(kmers_to_seq(s)) == 70 for s in frame.sequence)
    test = pd.read_csv(root / "fewshot" / "Demo-prom" / "test.tsv", sep="\t")
    assert not set(frame.sequence) & set(test.sequence)
    for task, (length, n_classes) in tasks.DEMO_GUE.items():
        splits = {s: pd.read_csv(root / "gue" / task / f"{s}.csv") for s in ("train", "dev", "test")}
        assert list(splits["train"].columns) == ["sequence", "label"]
        assert splits["train"].sequence.str.len().eq(length).all()
        assert set(splits["test"].label) == set(range(n_classes))
        assert not set(splits["train"].sequence) & set(splits["test"].sequence)


def test_promoter_positives_carry_the_planted_motifs():
    root = tasks.ensure_demo_tasks()
    frame = pd.read_csv(root / "gue" / "demo" / "prom" / "train.csv")
    tata = frame.sequence.str.contains("TATA[AT]A[AT][AG]", regex=True)
    assert tata[frame.label == 1].mean() > 0.8 > 0.2 > tata[frame.label == 0].mean()
