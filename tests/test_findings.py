"""Headline tables and paired comparisons on synthetic results with known answers."""
import numpy as np
import pandas as pd
import pytest

from genemask.report import findings


def synthetic(shift: float = 0.1, seeds: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        for dataset in ("prom-core", "splice-40"):
            for shot in (10, 50):
                base = rng.normal(0.3, 0.05)
                rows.append({"model": "random@1000:logo", "dataset": dataset, "shot": shot, "seed": seed, "metric": "mcc", "value": base})
                rows.append({"model": "genemask@1000:logo", "dataset": dataset, "shot": shot, "seed": seed, "metric": "mcc", "value": base + shift})
                rows.append({"model": "genemask@1000:logo", "dataset": dataset, "shot": shot, "seed": seed, "metric": "f1", "value": 0.5})
    return pd.DataFrame(rows)


def test_headline_table_orders_models_and_brackets_intervals():
    table = findings.headline_table(synthetic())
    assert list(table.columns) == ["prom-core", "splice-40", "all"]
    assert list(table.index) == ["genemask@1000:logo", "random@1000:logo"]  # best overall first
    assert table.loc["genemask@1000:logo", "all"].count("±") == 1
    one_seed = findings.headline_table(synthetic(seeds=1))
    assert "±" not in one_seed.loc["random@1000:logo", "all"]  # no interval from a single seed
    with pytest.raises(ValueError, match="metric 'auc'"):
        findings.headline_table(synthetic(), "auc")


def test_paired_comparison_recovers_a_known_shift():
    out = findings.paired_comparison(synthetic(0.1), "genemask@1000:logo", "random@1000:logo")
    assert out["pairs"] == 20 and out["wins"] == 20 and out["losses"] == 0
    assert out["mean_difference"] == pytest.approx(0.1)
    assert out["wilcoxon_p"] < 0.001
    same = findings.paired_comparison(synthetic(0.0), "genemask@1000:logo", "random@1000:logo")
    assert same["ties"] == 20 and np.isnan(same["wilcoxon_p"])
    with pytest.raises(ValueError, match="no mcc results for \\['cmgems@1000:logo'\\]"):
        findings.paired_comparison(synthetic(), "cmgems@1000:logo", "random@1000:logo")


def test_compute_seconds(tmp_path):
    (tmp_path / "pretrain" / "a").mkdir(parents=True)
    pd.DataFrame({"step": [1, 2], "seconds": [0.5, 61.0]}).to_csv(tmp_path / "pretrain" / "a" / "metrics.csv", index=False)
    (tmp_path / "fewshot" / "b").mkdir(parents=True)
    pd.DataFrame({"seconds": [10.0, 20.0]}).to_csv(tmp_path / "fewshot" / "b" / "fewshot_runs.csv", index=False)
    out = findings.compute_seconds(tmp_path).set_index("stage")["seconds"]
    assert out.to_dict() == {"fewshot": 30.0, "pretrain": 61.0}


def test_parse_run_name_round_trips_finetune_names():
    from genemask import finetune

    name = finetune.run_name({"strategy": "genemask-position-v1", "steps": 250, "model": "logo",
                              "masking_options": {"mlm_probability": 0.05}})
    assert findings.parse_run_name(name) == {"strategy": "genemask-position-v1", "tags": ["p=0.05"], "steps": 250, "size": "logo"}
    assert findings.parse_run_name("random-init:logo")["steps"] is None
    with pytest.raises(ValueError, match="not a run name"):
        findings.parse_run_name("genemask (abc123)")


def test_rate_effect_pairs_the_two_rates_at_each_budget():
    frame = synthetic(0.05)
    frame = frame[frame.metric == "mcc"]
    frame = pd.concat([
        frame.replace({"random@1000:logo": "genemask@500:logo", "genemask@1000:logo": "genemask[p=0.05]@500:logo"}),
        frame.replace({"random@1000:logo": "genemask@1000:logo", "genemask@1000:logo": "cmgems@1000:logo"}),
    ])
    table = findings.rate_effect(frame)
    assert table.steps.tolist() == [500]  # 1000 has no doubled-rate run
    row = table.iloc[0]
    assert row.mean_difference == pytest.approx(0.05) and row.wins == 20
    assert row.doubled_mean - row.default_mean == pytest.approx(0.05)
