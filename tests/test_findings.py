"""Verdict statistics on synthetic results with known answers: two-level bootstrap intervals,
paired contrasts, the pretraining-seed noise floor and the masking-rate pairs."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from genemask.identity import RunIdentity
from genemask.report import findings


def synthetic(shift: float = 0.1, pretrain_seeds: int = 3, seeds: int = 5, pretrain_sd: float = 0.0,
              methods: tuple[str, str] = ("genemask", "random")) -> pd.DataFrame:
    """Two methods on the same downstream runs: b's score plus ``shift`` for a, with a per-checkpoint
    offset of sd ``pretrain_sd`` (pretraining-seed noise) and shared downstream noise."""
    rng = np.random.default_rng(0)
    rows = []
    offsets = {(m, p): rng.normal(0, pretrain_sd) for m in methods for p in range(pretrain_seeds)}
    for seed in range(seeds):
        for dataset in ("prom-core", "splice-40"):
            for shot in (10, 50):
                base = rng.normal(0.3, 0.05)
                for method, extra in zip(methods, (shift, 0.0)):
                    identity = RunIdentity(strategy=method, model="logo", steps=1000, seed=0)
                    for p in range(pretrain_seeds):
                        rows.append({"method": identity.label(), **RunIdentity(**{**identity.__dict__, "seed": p}).columns(),
                                     "dataset": dataset, "shot": shot, "seed": seed, "metric": "mcc",
                                     "value": base + extra + offsets[(method, p)]})
    return pd.DataFrame(rows)


def test_contrast_recovers_a_known_shift_and_gives_a_verdict():
    out = findings.contrast(synthetic(0.1), "genemask@1000:logo", "random@1000:logo")
    assert out["mean_difference"] == pytest.approx(0.1)
    assert out["ci95_low"] == pytest.approx(0.1) and out["ci95_high"] == pytest.approx(0.1)  # no noise in the difference
    assert out["verdict"] == "better" and out["wins"] == 20 and out["paired_pretraining"]
    assert findings.contrast(synthetic(-0.1), "genemask@1000:logo", "random@1000:logo")["verdict"] == "worse"
    one = findings.contrast(synthetic(0.1, pretrain_seeds=1), "genemask@1000:logo", "random@1000:logo")
    assert one["verdict"] == "one pretraining run: no verdict"
    with pytest.raises(ValueError, match="method 'cmgems@1000:logo': no mcc results"):
        findings.contrast(synthetic(), "cmgems@1000:logo", "random@1000:logo")


def test_pretraining_seed_noise_widens_the_interval():
    """The two-level interval must cover pretraining-seed noise that a downstream-only one ignores."""
    noisy = synthetic(0.0, pretrain_seeds=3, pretrain_sd=0.05)
    out = findings.contrast(noisy, "genemask@1000:logo", "random@1000:logo")
    quiet = findings.contrast(synthetic(0.0, pretrain_seeds=3), "genemask@1000:logo", "random@1000:logo")
    assert quiet["ci95_high"] - quiet["ci95_low"] < 1e-12  # downstream noise cancels in a paired difference
    assert out["ci95_high"] - out["ci95_low"] > 0.01  # pretraining-seed noise does not
    floor = findings.noise_floor(noisy).set_index("method")
    assert floor.loc["random@1000:logo", "pretrain_seeds"] == 3
    assert 0.005 < floor.loc["random@1000:logo", "sd"] < 0.2
    assert findings.noise_floor(synthetic(pretrain_seeds=1)).empty  # one seed has no spread to report


def test_unpaired_pretraining_seeds_are_drawn_independently():
    frame = synthetic(0.1)
    frame = frame[~((frame["method"] == "random@1000:logo") & (frame["pretrain_seed"] == 2))]
    out = findings.contrast(frame, "genemask@1000:logo", "random@1000:logo")
    assert not out["paired_pretraining"] and out["pretrain_seeds_b"] == 2
    assert out["mean_difference"] == pytest.approx(0.1)


def test_headline_table_orders_methods_and_counts_pretraining_seeds():
    table = findings.headline_table(synthetic(), n_boot=200)
    assert list(table.columns) == ["pretraining seeds", "prom-core", "splice-40", "all"]
    assert list(table.index) == ["genemask@1000:logo", "random@1000:logo"]  # best overall first
    assert table.loc["genemask@1000:logo", "pretraining seeds"] == 3
    assert re.fullmatch(r"0\.\d{3} ±0\.\d{3}", table.loc["genemask@1000:logo", "all"])  # one line a cell
    with pytest.raises(ValueError, match="metric 'auc'"):
        findings.headline_table(synthetic(), "auc")


def test_bootstrap_is_reproducible():
    a = findings.method_score(synthetic(pretrain_sd=0.05), "random@1000:logo")
    b = findings.method_score(synthetic(pretrain_sd=0.05), "random@1000:logo")
    assert a == b and a["pretrain_seeds"] == 3 and a["downstream_seeds"] == 5 and a["strata"] == 4


def test_rate_effect_pairs_the_two_rates_at_each_budget():
    frame = synthetic(0.05)
    doubled = frame["pretrain_strategy"] == "genemask"
    frame.loc[:, "pretrain_strategy"] = "genemask"
    frame.loc[:, "pretrain_ranking"] = "ours"
    frame.loc[doubled, "pretrain_masking_options"] = json.dumps({"centre_probability": 0.05})
    frame["method"] = np.where(doubled, "genemask[p=0.05]@1000:logo", "genemask@1000:logo")
    table = findings.rate_effect(frame)
    assert table.steps.tolist() == [1000]
    row = table.iloc[0]
    assert row.mean_difference == pytest.approx(0.05) and row.wins == 20 and row.verdict == "better"
    assert row.doubled_mean - row.default_mean == pytest.approx(0.05)


def test_compute_seconds(tmp_path):
    (tmp_path / "pretrain" / "a").mkdir(parents=True)
    pd.DataFrame({"step": [1, 2], "seconds": [0.5, 61.0]}).to_csv(tmp_path / "pretrain" / "a" / "metrics.csv", index=False)
    (tmp_path / "pretrain-seeds" / "c").mkdir(parents=True)
    pd.DataFrame({"step": [1], "seconds": [7.0]}).to_csv(tmp_path / "pretrain-seeds" / "c" / "metrics.csv", index=False)
    (tmp_path / "fewshot" / "b").mkdir(parents=True)
    pd.DataFrame({"seconds": [10.0, 20.0]}).to_csv(tmp_path / "fewshot" / "b" / "fewshot_runs.csv", index=False)
    (tmp_path / "transition" / "d").mkdir(parents=True)  # a cell with provenance: its CPU time, not its clock
    pd.DataFrame({"step": [1], "seconds": [900.0]}).to_csv(tmp_path / "transition" / "d" / "metrics.csv", index=False)
    (tmp_path / "transition" / "d" / "provenance.json").write_text('{"cpu_seconds": 600.5, "wall_seconds": 950.0}')
    (tmp_path / "pretrain" / "a" / "provenance.json").write_text('{"cpu_seconds": null}')  # migrated: the clock
    frame = findings.compute_seconds(tmp_path).set_index("stage")
    assert frame["seconds"].to_dict() == {"fewshot": 30.0, "pretrain": 61.0, "pretrain-seeds": 7.0, "transition": 600.5}
    assert frame.loc["transition", "source"] == "cpu time" and frame.loc["pretrain", "source"] == "run clock"


def test_by_protocol_scores_and_contrasts_each_protocol_on_its_own_runs():
    probe, tuned = synthetic(0.1), synthetic(-0.1, pretrain_sd=0.0)
    tuned = pd.concat([tuned, synthetic(0.0, methods=("global", "random")).query("method == 'global@1000:logo'")])
    pairs = [("genemask@1000:logo", "random@1000:logo"), ("global@1000:logo", "random@1000:logo")]
    scores, contrasts = findings.by_protocol({"probe": probe, "fine-tuning": tuned}, pairs, n_boot=200)
    got = contrasts.set_index(["protocol", "a"])
    assert got.loc[("probe", "genemask@1000:logo"), "verdict"] == "better"
    assert got.loc[("fine-tuning", "genemask@1000:logo"), "verdict"] == "worse"
    assert got.loc[("fine-tuning", "genemask@1000:logo"), "mean_difference"] == pytest.approx(-0.1)
    assert ("probe", "global@1000:logo") not in got.index  # the probe frame has no Global runs
    assert len(got) == 3 and set(scores.protocol) == {"probe", "fine-tuning"}
    assert scores.groupby("protocol").method.nunique().to_dict() == {"fine-tuning": 3, "probe": 2}
    assert (scores.pretrain_seeds == 3).all()
