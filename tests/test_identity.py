"""Typed run identity: from configs and cells.csv rows, display labels, and the join of downstream
results to their pretraining cells through the grid's references (on committed-layout fixtures)."""
import json

import pandas as pd
import pytest

from genemask import finetune
from genemask.identity import COLUMNS, RunIdentity, from_columns


def test_identity_from_configs_and_cells_rows():
    run = RunIdentity.from_config({"strategy": "cmgems", "steps": 1000, "model": "logo", "seed": 2,
                                   "switch_threshold": 20.0, "masking_options": "{}", "batch_size": 16,
                                   "max_len": 128, "rank_table": "@pmi/abc/kmer_ranking.csv"})
    assert (run.strategy, run.seed, run.ranking, run.switch_threshold, run.tokens) == ("cmgems", 2, "ours", 20.0, 1000 * 16 * 128)
    assert run.label() == "cmgems[switch=20]@1000:logo"
    assert run.method() == RunIdentity.from_config({"strategy": "cmgems", "steps": 1000, "model": "logo", "seed": 0,
                                                    "switch_threshold": 20.0, "batch_size": 16, "max_len": 128}).method()
    # cells.csv writes options as JSON or Python literals; NaN where a cell did not set them.
    a = RunIdentity.from_config({"strategy": "genemask", "steps": 250, "model": "logo",
                                 "masking_options": "{'centre_probability': 0.05}", "seed": float("nan")})
    assert a.label() == "genemask[p=0.05]@250:logo" and a.seed == 0 and json.loads(a.masking_options) == {"centre_probability": 0.05}
    data_a = RunIdentity.from_config({"strategy": "genemask", "rank_table": "${GENEMASK_DATA}/genemask/Data-A_norm-pmi-score-ranking.csv"})
    assert data_a.ranking == "Data-A" and data_a.label() == "genemask[Data-A]"
    assert RunIdentity.from_config({"strategy": "random", "rank_table": "x.csv"}).ranking == ""  # random reads no ranking
    assert RunIdentity.from_config({"strategy": "genemask", "switch_threshold": 20.0}).switch_threshold is None
    assert RunIdentity.from_config({"strategy": "cmgems", "switch_threshold": 1.0, "steps": 5}).label() == "cmgems@5"
    assert RunIdentity.untrained("logo").label() == "random-init:logo"
    with pytest.raises(ValueError, match="no 'strategy'"):
        RunIdentity.from_config({"steps": 5})
    assert finetune.run_name({"steps": 5}) is None


def test_identity_round_trips_through_columns():
    run = RunIdentity.from_config({"strategy": "global", "steps": 1000, "model": "logo", "seed": 1, "batch_size": 16,
                                   "max_len": 128})
    frame = pd.DataFrame([run.columns(), run.kept_at(250).columns()])
    assert list(frame.columns) == list(COLUMNS)
    assert from_columns(frame.iloc[0]) == run and from_columns(frame.iloc[1]) == run.kept_at(250)
    assert run.kept_at(250).label() == "global@250of1000:logo" and run.kept_at(250).tokens == 250 * 16 * 128
    assert run.kept_at(250).method() != run.method()  # not the same method as a 250-step run's end
    with pytest.raises(ValueError, match="step 1000: a kept checkpoint lies inside the run's 1000 steps"):
        run.kept_at(1000)


def _write_cells(root, stage, rows):
    (root / stage).mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / stage / "cells.csv", index=False)


def test_downstream_rows_join_their_pretraining_cells(tmp_path, monkeypatch):
    """The committed layout: a few-shot cell names its checkpoint @stage/key/checkpoint (a key is 16
    hex digits: the store reads no other as a folder); the join gives each row the seed and strategy
    of that cell, whatever its stored model name says."""
    from genemask.report import runs

    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path))
    root = tmp_path / "cpu"
    common = {"model": "logo", "steps": 1000, "batch_size": 16, "max_len": 128, "masking_options": "{}",
              "rank_table": "@pmi/4f0de78b864e53c4/kmer_ranking.csv", "switch_threshold": 1.0}
    _write_cells(root, "pretrain", [{"key": "aaaaaaaaaaaaaaaa", "strategy": "random", "seed": 0, **common}])
    _write_cells(root, "pretrain-seeds", [{"key": "bbbbbbbbbbbbbbbb", "strategy": "random", "seed": 1, **common},
                                          {"key": "cccccccccccccccc", "strategy": "genemask", "seed": 1, **common}])
    _write_cells(root, "fewshot", [{"key": "00000000000000f1", "checkpoint": "@pretrain/aaaaaaaaaaaaaaaa/checkpoint"},
                                   {"key": "00000000000000f2", "checkpoint": "random:logo"}])
    _write_cells(root, "fewshot-seeds", [{"key": "00000000000000f3", "checkpoint": "@pretrain-seeds/bbbbbbbbbbbbbbbb/checkpoint"},
                                         {"key": "00000000000000f4", "checkpoint": "@pretrain-seeds/cccccccccccccccc/checkpoint"}])
    for stage, key in (("fewshot", "00000000000000f1"), ("fewshot", "00000000000000f2"), ("fewshot-seeds", "00000000000000f3"), ("fewshot-seeds", "00000000000000f4")):
        (root / stage / key).mkdir()
        pd.DataFrame({"model": ["random@1000:logo"], "dataset": ["prom-core"], "shot": [10], "seed": [0],
                      "metric": ["mcc"], "value": [0.1]}).to_csv(root / stage / key / "fewshot_results.csv", index=False)
    frame = runs.downstream(["fewshot", "fewshot-seeds"], "fewshot_results.csv", "cpu")
    got = frame.set_index("cell")[["method", "pretrain_seed", "pretrain_strategy"]]
    assert got.loc["00000000000000f1"].tolist() == ["random@1000:logo", 0, "random"]
    assert got.loc["00000000000000f2"].tolist() == ["random-init:logo", 0, "none"]
    assert got.loc["00000000000000f3"].tolist() == ["random@1000:logo", 1, "random"]
    assert got.loc["00000000000000f4"].tolist() == ["genemask@1000:logo", 1, "genemask"]  # the stored name was wrong: the join decides
    # The join is kept for the process (a page asks many times), never past a change to what it read,
    # and a caller's edits do not reach the next caller.
    frame["value"] = -1.0
    result = root / "fewshot" / "00000000000000f1" / "fewshot_results.csv"
    result.write_text(result.read_text().replace("0.1", "0.25"))
    again = runs.downstream(["fewshot", "fewshot-seeds"], "fewshot_results.csv", "cpu").set_index("cell")["value"]
    assert again["00000000000000f1"] == 0.25 and again["00000000000000f2"] == 0.1
    # A checkpoint kept mid-run is the run at that step, on the run's longer learning-rate schedule.
    _write_cells(root, "fewshot-seeds", [{"key": "00000000000000f3", "checkpoint": "@pretrain-seeds/bbbbbbbbbbbbbbbb/checkpoints/step-00000400"}])
    kept = runs.downstream(["fewshot-seeds"], "fewshot_results.csv", "cpu").iloc[0]
    assert (kept["method"], kept["pretrain_steps"], kept["pretrain_schedule_steps"]) == ("random@400of1000:logo", 400, 1000)
    _write_cells(root, "fewshot-seeds", [{"key": "00000000000000f3", "checkpoint": "@pretrain-seeds/dddddddddddddddd/checkpoint"}])
    with pytest.raises(ValueError, match="no collected pretraining cell pretrain-seeds/dddddddddddddddd"):
        runs.downstream(["fewshot-seeds"], "fewshot_results.csv", "cpu")


def test_committed_cpu_results_join_and_name_one_method_per_label():
    from genemask import paths
    from genemask.report import runs

    if not (paths.RESULTS / "cpu" / "fewshot" / "cells.csv").exists():
        pytest.skip("no committed cpu results")
    frame = runs.downstream(["fewshot"], "fewshot_results.csv", "cpu")
    assert {"random@1000:logo", "genemask@1000:logo", "random-init:logo"} <= set(frame["method"])
    assert frame.groupby("method")["pretrain_strategy"].nunique().max() == 1


def test_identity_of_joins_a_label_to_its_run(tmp_path, monkeypatch):
    from genemask.report import runs

    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path))
    _write_cells(tmp_path / "cpu", "pretrain", [{"key": "aaaaaaaaaaaaaaaa", "strategy": "cmgems", "seed": 2, "model": "logo", "steps": 1000,
                                                 "switch_threshold": 20.0, "masking_options": "{}"}])
    run = runs.identity_of("cmgems[switch=20]@1000:logo", "cpu")
    assert (run.strategy, run.switch_threshold, run.seed) == ("cmgems", 20.0, -1)  # a method: no seed
    assert runs.identity_of("random-init:logo", "cpu").strategy == "none"
    with pytest.raises(ValueError, match="no pretraining run of profile 'cpu' has this label"):
        runs.identity_of("global@1000:logo", "cpu")


# ----------------------------------------------------------------------------------------------
# Issue 22: mlm_probability renamed centre_probability; committed rows keep the old spelling


def test_legacy_params_renames_a_committed_rows_centre_probability():
    from genemask.identity import RENAMED_OPTIONS, legacy_params

    assert RENAMED_OPTIONS == {"mlm_probability": "centre_probability"}
    row = {"key": "16ab4db38a7e3a49", "steps": "250", "masking_options": '{"mlm_probability": 0.05}', "strategy": "genemask"}
    assert legacy_params("pretrain", row) == {**row, "masking_options": '{"centre_probability": 0.05}'}
    assert row["masking_options"] == '{"mlm_probability": 0.05}'  # pure: the row given is left as it was
    record = {"masking_options": {"mlm_probability": 0.05, "selection": "v1"}, "steps": 250}
    assert legacy_params("pretrain", record) == {"masking_options": {"centre_probability": 0.05, "selection": "v1"}, "steps": 250}
    assert legacy_params("pretrain", {"masking_options": "{'mlm_probability': 0.05}"}) == {"masking_options": '{"centre_probability": 0.05}'}
    for unchanged in ({"masking_options": "{}"}, {"masking_options": float("nan")}, {"checkpoint": "@pretrain/x/checkpoint"},
                      {"masking_options": '{"centre_probability": 0.05}'}):
        assert legacy_params("fewshot", unchanged) == unchanged
    with pytest.raises(ValueError, match="^pretrain: masking_options .* spell centre_probability both ways"):
        legacy_params("pretrain", {"masking_options": {"mlm_probability": 0.05, "centre_probability": 0.05}})
    # Migrated, a committed row is the planned cell's row (params/cpu.yaml spells the new name).
    from genemask.store import cell_text

    assert legacy_params("pretrain", row)["masking_options"] == cell_text({"centre_probability": 0.05})


def test_a_calibrated_run_is_identified_by_its_centre_probability():
    """pretrain.json of a run asked for mlm_probability records what it was calibrated to; the
    identity (and label) are by that centre probability. Without the record the option is a masked
    fraction as asked, shown under its own name (never as p=)."""
    config = {"strategy": "genemask", "steps": 100, "model": "tiny", "masking_options": {"mlm_probability": 0.15}}
    calibration = {"mlm_probability": 0.15, "options": {"centre_probability": 0.0173}, "chunks": 4096, "seed": 0}
    run = RunIdentity.from_config({**config, "calibration": calibration})
    assert run.options == {"centre_probability": 0.0173} and run.label() == "genemask[p=0.0173]@100:tiny"
    asked = RunIdentity.from_config(config)
    assert asked.options == {"mlm_probability": 0.15} and asked.label() == "genemask[mlm_probability=0.15]@100:tiny"
    curriculum = RunIdentity.from_config({"strategy": "cmgems", "masking_options": {"mlm_probability": 0.15}, "calibration": {
        "mlm_probability": 0.15, "options": {"genemask_probability": 0.0173, "global_probability": 0.02}}})
    assert curriculum.options == {"genemask_probability": 0.0173, "global_probability": 0.02}


def test_committed_rows_with_the_old_spelling_read_as_centre_probability(tmp_path, monkeypatch):
    """A cells.csv row with the old ``mlm_probability`` (collected before the rename, not yet re-keyed
    by --migrate-keys) reads as the centre probability it was: the same identity and label as the new
    spelling, so the report's selectors (DOUBLED, the verdict plan) find it."""
    from genemask.report import runs

    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path))
    common = {"model": "logo", "steps": 250, "batch_size": 16, "max_len": 128, "strategy": "genemask", "seed": 0,
              "rank_table": "@pmi/4f0de78b864e53c4/kmer_ranking.csv", "switch_threshold": 1.0}
    _write_cells(tmp_path / "cpu", "pretrain", [{"key": "aaaaaaaaaaaaaaaa", **common, "masking_options": '{"mlm_probability": 0.05}'},
                                                {"key": "bbbbbbbbbbbbbbbb", **common, "masking_options": "{}"}])
    frame = runs.pretraining_runs("cpu").set_index("key")
    assert frame.loc["aaaaaaaaaaaaaaaa", "pretrain_masking_options"] == json.dumps({"centre_probability": 0.05})
    assert frame.loc["aaaaaaaaaaaaaaaa", "method"] == "genemask[p=0.05]@250:logo"
    assert frame.loc["bbbbbbbbbbbbbbbb", "method"] == "genemask@250:logo"
