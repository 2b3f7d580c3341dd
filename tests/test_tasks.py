"""Downstream data: the readers take the released files' quirks and name file and line of bad rows;
the registry knows every dataset and says what the shared data lacks; splits are balanced, seeded
and free of train/test overlap."""
import pandas as pd
import pytest

from genemask import tasks
from genemask.tokenizer import kmerize
from helpers import real_data

SEQ = "ACGTACGTTAGCATCGATCGGATC"


def write(path, text, newline="\n"):
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def test_quoted_crlf_kmer_tsv_reads_as_raw_dna(tmp_path):
    path = write(tmp_path / "train.tsv", f'"sequence"\t"label"\n"{kmerize(SEQ)}"\t"1"\n"{kmerize(SEQ[::-1])}"\t0\n',
                 newline="\r\n")
    frame = tasks.read_labelled_tsv(path, n_classes=2)
    assert frame.sequence.tolist() == [SEQ, SEQ[::-1]]
    assert frame.label.tolist() == [1, 0] and frame.label.dtype == "int64"


def test_two_space_header_and_raw_dna(tmp_path):
    path = write(tmp_path / "dev.tsv", f"sequence  label\n{SEQ.lower()}\t0\n", newline="\r\n")
    assert tasks.read_labelled_tsv(path).sequence.tolist() == [SEQ]


@pytest.mark.parametrize("text, message", [
    (f"sequence\tlabel\n{SEQ}\t1.5\n", r"train.tsv:2: label '1.5' is not an integer"),
    (f"sequence\tlabel\n{SEQ}\t0\n{SEQ}\t2\n", r"train.tsv:3: label 2 out of range 0..1"),
    (f"sequence\tlabel\n{SEQ}\t-1\n", r"train.tsv:2: label -1 out of range"),
    (f"seq\tlab\n{SEQ}\t0\n", r"train.tsv:1: expected header 'sequence<TAB>label'"),
    (f"sequence\tlabel\n{SEQ} 0\n", r"train.tsv:2: expected 2 tab-separated fields"),
    ("sequence\tlabel\nACGTAC GTACGT\t0\n", r"train.tsv:2: k-mer text is not overlapping 6-mers"),
    ("sequence\tlabel\nMKVLAT\t0\n", r"train.tsv:2: sequence 'MKVLAT' is neither DNA"),
    ("sequence\tlabel\n", r"train.tsv: no data rows"),
    ("", r"train.tsv: empty file"),
])
def test_bad_tsv_names_file_and_line(tmp_path, text, message):
    path = write(tmp_path / "train.tsv", text)
    with pytest.raises(tasks.TaskDataError, match=message):
        tasks.read_labelled_tsv(path, n_classes=2)


def test_gue_csv_reader(tmp_path):
    good = write(tmp_path / "test.csv", f"sequence,label\n{SEQ},1\n{SEQ[::-1]},0\n")
    assert tasks.read_split(good, 2).label.tolist() == [1, 0]
    with pytest.raises(tasks.TaskDataError, match=r"test.csv:1: expected header 'sequence,label'"):
        tasks.read_gue_csv(write(tmp_path / "test.csv", f"text,label\n{SEQ},1\n"))
    with pytest.raises(tasks.TaskDataError, match=r"test.csv:2: label 'x' is not an integer"):
        tasks.read_gue_csv(write(tmp_path / "test.csv", f"sequence,label\n{SEQ},x\n"))
    with pytest.raises(tasks.TaskDataError, match="absent.csv: no such file"):  # bad input, not a documented gap
        tasks.read_gue_csv(tmp_path / "absent.csv")


def test_registry_names_every_dataset_and_its_gaps():
    frame = tasks.registry_frame().set_index("dataset")
    for name in ("prom-core", "prom-300", "cohn-enh", "splice-40", "silencer", "EMP/H3", "prom/prom_core_all",
                 "tf/0", "mouse/0", "splice/reconstructed", "virus/covid"):
        assert name in frame.index
    assert sum(not t.demo for t in tasks.GUE.values()) == 28
    assert sum("train" in t.missing for t in tasks.GUE.values()) == 15  # 14 + covid (no split at all)
    assert "prom_300_all/test.csv" in frame.loc["prom-300", "splits used"]
    assert "prom_300_all" in frame.loc["prom-300", "missing / substitute"]
    assert "skipped" in frame.loc["virus/covid", "missing / substitute"]
    with pytest.raises(ValueError, match=r"unknown dataset 'prom_core'; known: .*prom-core.*silencer"):
        tasks.get_dataset("prom_core")
    with pytest.raises(ValueError, match=r"did you mean 'prom-core'"):
        tasks.get_dataset("Prom-core")


def test_demo_fewshot_split_is_balanced_seeded_and_disjoint():
    split = tasks.fewshot_split("demo-motif", 10, seed=3)
    assert split.train.label.value_counts().to_dict() == {0: 10, 1: 10, 2: 10}
    assert not set(split.train.sequence) & set(split.test.sequence)
    assert split.info["test_overlap_removed"] == 0 and split.n_classes == 3
    again = tasks.fewshot_split("demo-motif", 10, seed=3)
    pd.testing.assert_frame_equal(split.train, again.train)
    sampled = tasks.fewshot_split("demo-motif", 20, seed=0)  # no 20/ file: sampled from the 50/ file, stated
    assert sampled.info["train_file"].endswith("50/train.tsv") and "sampled" in sampled.info["train_substitute"]
    other = tasks.fewshot_split("demo-motif", 20, seed=1)
    assert set(sampled.train.sequence) != set(other.train.sequence)


def test_fewshot_bad_input():
    with pytest.raises(ValueError, match=r"demo-prom: shots=500 per class, more than any released training file has"):
        tasks.fewshot_split("demo-prom", 500)
    with pytest.raises(ValueError, match=r"shots=0: expected a positive integer"):
        tasks.fewshot_split("demo-prom", 0)
    with pytest.raises(ValueError, match=r"is a GUE task"):
        tasks.fewshot_split("demo/prom", 10)
    with pytest.raises(ValueError, match=r"class 1 has only 2 example"):
        tasks.sample_per_class(pd.DataFrame({"sequence": list("ABCDE"), "label": [0, 0, 0, 1, 1]}), 3, 0)


def test_remove_overlap_counts_rows():
    train = pd.DataFrame({"sequence": ["AAA", "CCC"], "label": [0, 1]})
    test = pd.DataFrame({"sequence": ["AAA", "GGG", "AAA"], "label": [0, 1, 0]})
    kept, removed = tasks.remove_overlap(train, test)
    assert removed == 2 and kept.sequence.tolist() == ["GGG"]


def test_demo_gue_split():
    split = tasks.gue_split("demo/motif")
    assert {len(split.train), len(split.dev), len(split.test)} == {1200, 300, 600}
    assert split.info["test_overlap_removed"] == 0
    capped = tasks.gue_split("demo/motif", max_eval=250)
    assert (len(capped.train), len(capped.dev), len(capped.test)) == (1200, 250, 250)
    assert capped.test.equals(tasks.gue_split("demo/motif", seed=3, max_eval=250).test)  # the same subset every run
    with pytest.raises(ValueError, match="max_eval=0"):
        tasks.gue_split("demo/motif", max_eval=0)


# ---- real data (skipped when $GENEMASK_DATA does not hold it) ----

def test_real_quirky_files_read():
    old = tasks.read_labelled_tsv(real_data("dnabert/examples/sample_data/ft/prom-core/6/dev.tsv"), 2)  # CRLF, 2-space header
    assert len(old) == 5919 and old.sequence.str.len().eq(70).all()
    quoted = tasks.read_labelled_tsv(real_data(f"{tasks.FEWSHOT_ROOT}/Prom-core/10/train.tsv"), 2)
    assert quoted.label.value_counts().to_dict() == {0: 10, 1: 10}


def test_real_fewshot_splits_substitutes_and_leakage():
    real_data(tasks.FEWSHOT_ROOT)
    real_data("gue/prom/prom_300_all/test.csv")
    core = tasks.fewshot_split("prom-core", 1000)
    assert core.info["test_overlap_removed"] == 1 and core.info["n_test"] == 5919
    p300 = tasks.fewshot_split("prom-300", 50)
    assert p300.info["test_file"] == "gue/prom/prom_300_all/test.csv" and p300.info["test_overlap_removed"] == 4
    assert "prom_300_all" in p300.info["test_substitute"]
    splice = tasks.fewshot_split("splice-40", 10, seed=2)  # pooled file: 100 per class, 10 drawn per seed
    assert splice.train.label.value_counts().to_dict() == {0: 10, 1: 10, 2: 10} and "pool" in splice.info["train_sampling"]
    assert tasks.fewshot_split("splice-40", 1000).info["train_file"].endswith("train_splice40_500.tsv")
    cohn = tasks.fewshot_split("cohn-enh", 10)
    assert cohn.info["test_overlap_removed"] == 2 and not set(cohn.train.sequence) & set(cohn.test.sequence)
    with pytest.raises(tasks.DataUnavailable, match="cohn-enh: 1000-shot training data is not in the shared data"):
        tasks.fewshot_split("cohn-enh", 1000)
    assert tasks.fewshot_split("silencer", 100).info["train_file"] == "fewshot/silencer/50/train.tsv"


def test_real_gue_availability_and_leakage():
    real_data("gue/prom/prom_core_all/train.csv")
    available = tasks.available_gue_tasks()
    assert len(available) == 13 and "EMP/H3" not in available and "mouse/1" not in available
    assert len(tasks.available_gue_tasks("dev")) == 27
    split = tasks.gue_split("prom/prom_core_all")
    assert split.info["test_overlap_removed"] == 43 and split.info["dev_overlap_removed"] == 54
    with pytest.raises(tasks.DataUnavailable, match="EMP/H3: train.csv is not in the shared data"):
        tasks.gue_split("EMP/H3")
    substitute = tasks.gue_split("EMP/H3", missing_train="dev")
    assert len(substitute.train) == 1197 and "80 % of dev" in substitute.info["substitute"]
    with pytest.raises(tasks.DataUnavailable, match="virus/covid: no split"):
        tasks.gue_split("virus/covid")
    audit = tasks.overlap_audit().set_index("pair")
    assert audit.loc["DNABERT prom-core dev vs GUE prom_core_all train", "unique_sequences_a_in_b"] == 4782


def test_resample_draws_each_seed_from_the_union_of_released_files():
    one = tasks.fewshot_split("demo-prom", 10, seed=0, resample=True)
    two = tasks.fewshot_split("demo-prom", 10, seed=1, resample=True)
    assert one.train.label.value_counts().tolist() == [10, 10]
    assert set(one.train.sequence) != set(two.train.sequence)  # seeds now vary the examples
    assert "union of the released training files" in one.info["train_sampling"]
    assert not set(one.test.sequence) & set(pd.concat([one.train, two.train]).sequence)


def test_validation_rows_come_from_the_training_pool_outside_train_and_test():
    """A learning-rate pilot scores held-out training-pool rows: never a training row, never a test row."""
    split = tasks.fewshot_split("demo-motif", 10, seed=2, resample=True, validation=20)
    assert split.dev.label.value_counts().to_dict() == {0: 20, 1: 20, 2: 20}
    assert not set(split.dev.sequence) & set(split.train.sequence)
    assert not set(split.dev.sequence) & set(split.test.sequence)
    assert split.info["n_validation"] == 60 and "disjoint from the test set" in split.info["validation_sampling"]
    pd.testing.assert_frame_equal(split.dev, tasks.fewshot_split("demo-motif", 10, seed=2, resample=True, validation=20).dev)
    assert set(split.dev.sequence) != set(tasks.fewshot_split("demo-motif", 10, seed=3, resample=True, validation=20).dev.sequence)
    assert tasks.fewshot_split("demo-motif", 10, seed=2).dev is None
    with pytest.raises(tasks.DataUnavailable, match=r"demo-motif: 50-shot training pool .*50/train.tsv has fewer than "
                                                    r"validation=20 spare rows per class .*\{0: 0, 1: 0, 2: 0\}"):
        tasks.fewshot_split("demo-motif", 50, seed=0, validation=20)  # the released set is the whole pool
    with pytest.raises(ValueError, match="validation=0"):
        tasks.fewshot_split("demo-motif", 10, validation=0)
