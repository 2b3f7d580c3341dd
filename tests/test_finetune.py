"""Fine-tuning: the papers' regimes and budgets, checkpoints of any origin (and refusal of another k),
scikit-learn metrics, same seed → same metrics, best-by-dev-loss selection, and the report tables."""
import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from genemask import finetune, models, tasks, tokenizer
from genemask.report import downstream


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "checkpoint"
    models.masked_lm("tiny", seed=0).save_pretrained(folder)
    tokenizer.build_tokenizer(6).save_pretrained(folder)
    (folder / "pretrain.json").write_text(json.dumps({"config": {"strategy": "genemask", "steps": 300, "model": "tiny"}}))
    return folder


@pytest.fixture(scope="module")
def small_split():
    split = tasks.fewshot_split("demo-prom", 10, seed=0, max_test=120)
    return split


def test_metrics_match_scikit_learn():
    labels = np.array([0, 1, 1, 0, 1, 0])
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.4, 0.6], [0.1, 0.9], [0.9, 0.1]])
    out = finetune.classification_metrics(labels, probs)
    preds = probs.argmax(1)
    assert out["accuracy"] == skm.accuracy_score(labels, preds)
    assert out["f1"] == skm.f1_score(labels, preds, average="macro")
    assert out["mcc"] == skm.matthews_corrcoef(labels, preds)
    assert out["auc"] == skm.roc_auc_score(labels, probs[:, 1])
    three = finetune.classification_metrics([0, 1, 2, 2], np.eye(3)[[0, 1, 2, 1]])
    assert three["auc"] == skm.roc_auc_score([0, 1, 2, 2], np.eye(3)[[0, 1, 2, 1]], multi_class="ovo")
    assert np.isnan(finetune.classification_metrics([1, 1], probs[:2])["auc"])
    assert out["predicted_classes"] == 2
    constant = finetune.classification_metrics(labels, np.tile([0.4, 0.6], (6, 1)))  # a degenerate run
    assert (constant["predicted_classes"], constant["mcc"]) == (1, 0.0)


def test_regimes_and_budgets():
    small, large = finetune.fewshot_config(100, 0), finetune.fewshot_config(500, 0)
    assert (small.batch_size, small.learning_rate, small.epochs) == (5, 1e-4, 20)
    assert (large.batch_size, large.learning_rate, large.epochs) == (15, 5e-5, 5)
    assert small.warmup_ratio == 0.1 and small.hidden_dropout == 0.1 and small.weight_decay == 0.01
    with pytest.raises(ValueError, match="unknown key"):
        finetune.fewshot_config(10, 0, small={"lr": 1})
    mouse = finetune.gue_config(tasks.GUE["mouse/0"], 0)
    assert (mouse.max_steps, mouse.learning_rate, mouse.batch_size, mouse.warmup_steps, mouse.max_length) == (1000, 3e-5, 32, 30, 110)
    assert finetune.gue_config(tasks.GUE["mouse/0"], 0, epochs=1).max_steps is None
    capped = finetune.gue_config(tasks.GUE["EMP/H3"], 0, max_steps=70, max_length=128)
    assert (capped.max_steps, capped.warmup_steps, capped.max_length) == (70, 7, 128)  # warmup 50 would eat the budget
    assert finetune.gue_config(tasks.GUE["prom/prom_core_all"], 0, max_length=128).max_length == 80  # a cap, not a pad
    assert finetune.fewshot_config(10, 0, max_length=128).max_length == 128


def test_seed_list():
    assert finetune.seed_list(3) == [0, 1, 2] and finetune.seed_list([5, 7]) == [5, 7]
    for bad in (0, [], [1, 1], "2", True, [1.5]):
        with pytest.raises(ValueError, match="seeds="):
            finetune.seed_list(bad)


def test_checkpoint_info_and_bad_checkpoints(tiny_checkpoint, tmp_path):
    from genemask.identity import RunIdentity

    assert finetune.checkpoint_info("random:logo") == {"kind": "random", "size": "logo", "k": 6, "name": "random-init:logo",
                                                       "identity": RunIdentity.untrained("logo")}
    info = finetune.checkpoint_info(tiny_checkpoint)
    assert info["name"] == "genemask@300:tiny" and info["k"] == 6
    # The authors' ranking and a changed masking rate show in the name: grid cells stay apart.
    assert finetune.run_name({"strategy": "genemask", "steps": 1000, "model": "logo",
                              "rank_table": "/d/genemask/Data-A_norm-pmi-score-ranking.csv",
                              "masking_options": {"centre_probability": 0.05}}) == "genemask[Data-A,p=0.05]@1000:logo"
    assert finetune.run_name({"strategy": "random", "steps": 250, "model": "logo", "masking_options": "{}",
                              "rank_table": "@pmi/x/kmer_ranking.csv"}) == "random@250:logo"
    assert finetune.run_name({"strategy": "cmgems", "masking_options": "{'centre_probability': 0.05}"}) == "cmgems[p=0.05]"
    assert finetune.run_name({"steps": 5}) is None
    assert finetune.run_name({"strategy": "cmgems", "steps": 1000, "switch_threshold": 20.0}) == "cmgems[switch=20]@1000"
    assert finetune.run_name({"strategy": "cmgems", "steps": 1000, "switch_threshold": 1.0}) == "cmgems@1000"
    with pytest.raises(ValueError, match=r"unknown model size 'huge'; use random:dnabert"):
        finetune.checkpoint_info("random:huge")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        finetune.checkpoint_info(tmp_path / "nothing")
    other_k = tmp_path / "k4"
    models.masked_lm("tiny", seed=0).save_pretrained(other_k)  # a k=6 model ...
    tokenizer.build_tokenizer(4).save_pretrained(other_k)  # ... with a 4-mer tokenizer
    with pytest.raises(ValueError, match="model was trained with k=6 but its tokenizer is k=4"):
        finetune.checkpoint_info(other_k)
    with pytest.raises(ValueError, match="uses 6-mers, but k=4 was asked for"):
        finetune.load_classifier(tiny_checkpoint, 2, k=4)


def test_same_seed_same_metrics_and_head_is_new(tiny_checkpoint, small_split):
    config = finetune.FinetuneConfig(learning_rate=1e-3, batch_size=5, epochs=2, warmup_ratio=0.1, hidden_dropout=0.1)
    a = finetune.finetune(tiny_checkpoint, small_split.train, small_split.test, config, 2)
    b = finetune.finetune(tiny_checkpoint, small_split.train, small_split.test, config, 2)
    assert a.metrics == b.metrics and a.steps == 8
    model, k = finetune.load_classifier(tiny_checkpoint, 3, seed=1)
    assert k == 6 and model.classifier.out_features == 3
    mlm = models.masked_lm("tiny", seed=0)
    assert np.allclose(model.bert.embeddings.word_embeddings.weight.detach(), mlm.bert.embeddings.word_embeddings.weight.detach())


def test_best_checkpoint_by_dev_loss(small_split):
    split = tasks.gue_split("demo/prom")
    dev, test = split.dev.iloc[:60], split.test.iloc[:60]
    config = finetune.FinetuneConfig(learning_rate=5e-3, batch_size=16, max_steps=12, eval_steps=4)
    result = finetune.finetune("random:tiny", split.train.iloc[:96], test, config, 2, dev=dev)
    steps = [row["step"] for row in result.dev_curve]
    assert steps == [4, 8, 12]
    losses = [row["dev_loss"] for row in result.dev_curve]
    assert result.best_step == steps[int(np.argmin(losses))]


def test_labels_out_of_range_are_refused(small_split):
    bad = small_split.train.assign(label=small_split.train.label * 2)
    with pytest.raises(ValueError, match=r"train: label 2 out of range 0..1"):
        finetune.finetune("random:tiny", bad, small_split.test, finetune.fewshot_config(10, 0), 2)


def test_run_fewshot_tidy_and_bad_input():
    run = finetune.run_fewshot("random:tiny", ["demo-prom"], [10], 2, small={"epochs": 1}, max_test=50)
    from genemask.identity import COLUMNS

    # The pretraining run's identity travels as columns with every row (here: never pretrained).
    assert list(run.results.columns) == ["model", "dataset", "shot", "seed", "metric", "value", *COLUMNS]
    assert (run.results.pretrain_strategy == "none").all() and (run.results.pretrain_model == "tiny").all()
    assert set(run.results.metric) == {"accuracy", "f1", "mcc", "auc"} and len(run.results) == 8
    assert (run.results.model == "random-init:tiny").all() and run.runs.steps.tolist() == [4, 4]
    assert (run.runs.scored_on == "test").all()
    pilot = finetune.run_fewshot("random:tiny", ["demo-prom", "demo-motif"], [10], 1, small={"epochs": 1},
                                 resample=True, validation=5, echo=lambda *a: None)
    assert (pilot.runs.scored_on == "validation").all() and pilot.runs.n_validation.tolist() == [10, 15]
    with pytest.raises(ValueError, match="unknown dataset 'nope'; known:"):
        finetune.run_fewshot("random:tiny", ["nope"], [10], 1)
    with pytest.raises(ValueError, match="shots=500 per class"):
        finetune.run_fewshot("random:tiny", ["demo-prom"], [500], 1)
    with pytest.raises(ValueError, match="is a GUE task"):
        finetune.run_fewshot("random:tiny", ["demo/prom"], [10], 1)


def test_summary_interval_and_tables():
    results = pd.DataFrame({"model": "m", "dataset": "d", "shot": 10, "seed": [0, 1, 2], "metric": "mcc",
                            "value": [0.2, 0.4, 0.6]})
    row = downstream.summarize(results, ["model", "dataset", "shot"]).iloc[0]
    from scipy import stats

    low, high = stats.t.interval(0.95, 2, loc=0.4, scale=stats.sem([0.2, 0.4, 0.6]))
    assert row["n"] == 3 and np.isclose(row["sd"], 0.2) and np.isclose(row["ci95_low"], low) and np.isclose(row["ci95_high"], high)
    gue = pd.DataFrame({"model": "ours", "task": ["tf/0", "tf/0", "virus/covid", "virus/covid"],
                        "seed": 0, "metric": ["mcc", "f1", "mcc", "f1"], "value": [0.5, 0.7, 0.1, 0.6]})
    table = downstream.gue_table(gue)
    assert list(table.columns) == ["tf/0", "virus/covid"]
    assert table.loc["ours"].tolist() == [50.0, 60.0]
    assert table.loc["DNABERT (6-mer)" + downstream.QUOTED_SUFFIX, "tf/0"] == 66.84
    assert downstream.published_gue().shape == (10, 28)


def test_probe_protocol_is_deterministic_and_checked(tiny_checkpoint):
    """The linear probe: frozen features, logistic regression; same input → same metrics; each
    distinct sequence is embedded once; a bad protocol or max_train fails before any work."""
    first = finetune.run_fewshot(tiny_checkpoint, ["demo-prom"], [10], [0, 1], protocol="probe", resample=True, echo=lambda *a: None)
    again = finetune.run_fewshot(tiny_checkpoint, ["demo-prom"], [10], [0, 1], protocol="probe", resample=True, echo=lambda *a: None)
    pd.testing.assert_frame_equal(first.results, again.results)
    assert set(first.runs.protocol) == {"probe"} and (first.runs.steps == 0).all()
    mcc = first.results[first.results.metric == "mcc"].set_index("seed")["value"]
    assert mcc.between(-1, 1).all()
    features = finetune.embed(tiny_checkpoint, ["ACGTACGTAC", "ACGTACGTAC", "TTTTTTTTTTTT"], max_length=16)
    assert features.shape == (3, models.model_config("tiny").hidden_size) and np.allclose(features[0], features[1])
    with pytest.raises(ValueError, match="protocol='tune'"):
        finetune.run_fewshot(tiny_checkpoint, ["demo-prom"], [10], [0], protocol="tune")
    with pytest.raises(ValueError, match="max_train=1"):
        finetune.run_gue(tiny_checkpoint, ["demo/prom"], [0], protocol="probe", max_train=1)
    gue = finetune.run_gue(tiny_checkpoint, ["demo/prom"], [0], protocol="probe", max_train=200, max_eval=100, echo=lambda *a: None)
    assert gue.runs.iloc[0][["n_train", "n_test"]].tolist() == [200, 100]
    with pytest.raises(ValueError, match="single class"):
        finetune.probe(np.zeros((4, 2)), [1, 1, 1, 1], np.zeros((2, 2)), [0, 1], 2)


def test_nothing_to_run_is_a_clear_error(tmp_path, monkeypatch):
    """A data dir without the few-shot files: one line naming the missing file, before any training,
    not an empty table and not a skip (only the registry's documented gaps are skipped)."""
    monkeypatch.setenv("GENEMASK_DATA", str(tmp_path))
    with pytest.raises(tasks.TaskDataError, match=r"Prom-core/10/train.tsv: no such file"):
        finetune.run_fewshot("random:tiny", ["prom-core"], [10], [0], echo=lambda *a: None)
    with pytest.raises(tasks.DataUnavailable, match="no few-shot run is possible: every \\(dataset, shots\\) was skipped"):
        finetune.run_fewshot("random:tiny", ["cohn-enh"], [1000], [0], echo=lambda *a: None)  # a documented gap


def test_relative_data_dir_resolves_from_the_repository_root(monkeypatch, tmp_path):
    from genemask import paths

    monkeypatch.chdir(tmp_path)  # as papermill and nbval run notebooks in their own folder
    monkeypatch.setenv("GENEMASK_DATA", "lib")
    assert paths.data_dir() == (paths.ROOT / "lib").resolve()
def test_learning_rate_pilot_picks_the_best_validation_mean_and_refuses_test_scores():
    runs = pd.DataFrame({"cell": ["a", "a", "b", "b", "c", "c", "d", "d"], "dataset": "d", "shot": 10, "seed": [0, 1] * 4,
                         "learning_rate": [1e-4] * 2 + [4e-4] * 2 + [1e-4] * 2 + [4e-4] * 2,
                         "constant_predictions": [True, True, False, False, True, False, False, False],
                         "scored_on": "validation"})
    results = runs[["cell", "dataset", "shot", "seed"]].assign(
        method=["m1"] * 4 + ["m2"] * 4, metric="mcc", value=[0.0, 0.0, 0.3, 0.1, 0.0, 0.2, 0.25, 0.15])
    results = pd.concat([results, results.assign(metric="accuracy", value=0.9)])
    table, chosen = downstream.learning_rate_pilot(results, runs)
    assert chosen == 4e-4
    overall = table[table.method == "all"].set_index("learning_rate")
    assert overall.loc[1e-4, "mean"] == pytest.approx(0.05) and overall.loc[4e-4, "mean"] == pytest.approx(0.2)
    assert overall["runs"].tolist() == [4, 4] and overall["constant"].tolist() == [3, 0]
    assert table[table.method == "m2"].set_index("learning_rate").loc[1e-4, "constant"] == 1
    with pytest.raises(ValueError, match="scored on validation rows"):
        downstream.learning_rate_pilot(results, runs.assign(scored_on="test"))
    counts = downstream.constant_predictions(runs.assign(method=["m1"] * 4 + ["m2"] * 4))
    assert counts.set_index("method")["constant"].to_dict() == {"m1": 2, "m2": 1}
