"""The transition report: plateau, transition step, censoring, paired step contrasts, the
downstream gap per step, and reading the transition stage's committed layout."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from genemask.report import transition
from genemask.report.transition import TransitionRule


def curve(method: str, strategy: str, seed: int, drop_at: float | None, plateau: float = 7.3, step: int = 250,
          last: int = 10_000) -> pd.DataFrame:
    """A yardstick curve: warmup descent to ``plateau``, then (``drop_at``) a fall of 1.5 nats."""
    steps = np.arange(step, last + 1, step)
    loss = np.where(steps < 1000, 8.0 - (8.0 - plateau) * steps / 1000, plateau - 1e-5 * (steps - 1000))
    if drop_at is not None:
        loss = np.where(steps >= drop_at, loss - np.minimum(1.5, (steps - drop_at + step) / 1000), loss)
    return pd.DataFrame({"method": method, "strategy": strategy, "pretrain_seed": seed, "step": steps,
                         "yardstick_loss": loss, "switch_step": None})


def test_transition_step_is_the_first_evaluation_a_margin_under_the_plateau():
    frame = pd.concat([curve("random@10000:tiny", "random", 0, 5000), curve("random@10000:tiny", "random", 1, None)])
    steps = transition.transition_steps(frame, TransitionRule(margin=0.25))
    crossed, censored = steps.iloc[0], steps.iloc[1]
    assert crossed["plateau_loss"] == pytest.approx(7.3 - 1e-5 * 500, abs=1e-9)  # median of 1000..2000
    # the fall's first evaluation is 0.25 nats down, plus the plateau's slow slope: just past the margin
    assert crossed["crossed"] and crossed["transition_step"] == 5000
    later = transition.transition_steps(frame, TransitionRule(margin=0.5))
    assert later["transition_step"].iloc[0] == 5250
    assert not censored["crossed"] and np.isnan(censored["transition_step"]) and censored["last_step"] == 10_000
    summary = transition.transition_summary(steps, n_boot=200)
    row = summary.iloc[0]
    assert (row["runs"], row["crossed"], row["step_mean"], row["step_min"], row["step_max"]) == (2, 1, 5000, 5000, 5000)


def test_a_run_without_plateau_evaluations_is_an_error_naming_it():
    frame = curve("global@10000:tiny", "global", 2, None, step=2500)
    with pytest.raises(ValueError, match=r"global@10000:tiny seed 2: no yardstick evaluation in the plateau window"):
        transition.transition_steps(frame, TransitionRule(plateau_from=1000, plateau_to=2000))
    with pytest.raises(ValueError, match="margin=0: must be > 0"):
        TransitionRule(margin=0)


def test_step_contrast_pairs_seeds_and_counts_censored_runs():
    frame = pd.concat([*(curve("random@10000:tiny", "random", s, 4000 + 250 * s) for s in range(3)),
                       *(curve("genemask@10000:tiny", "genemask", s, 6000 + 250 * s) for s in range(2)),
                       curve("genemask@10000:tiny", "genemask", 2, None)])
    steps = transition.transition_steps(frame)
    out = transition.step_contrast(steps, "genemask", "random", n_boot=500)
    assert (out["seeds"], out["both_crossed"], out["censored_a"], out["censored_b"]) == (3, 2, 1, 0)
    # seed 2: genemask never crossed while random did, so it counts as later (censored), not as missing
    assert (out["later_in"], out["earlier_in"]) == (3, 0)
    assert out["mean_difference"] == 2000 and out["ci95_low"] == 2000 and out["verdict"] == "later"
    reverse = transition.step_contrast(steps, "random", "genemask", n_boot=100)
    assert (reverse["earlier_in"], reverse["verdict"]) == (3, "earlier")
    never = steps[steps["pretrain_seed"] == 2]  # one seed
    assert transition.step_contrast(never, "genemask", "random")["verdict"] == "one pretraining run: no verdict"
    censored_run = steps[(steps["strategy"] == "genemask") & (steps["pretrain_seed"] == 2)]
    only_censored = pd.concat([steps[steps["strategy"] == "random"], *(censored_run.assign(pretrain_seed=s) for s in (0, 1, 2))])
    censored = transition.step_contrast(only_censored, "genemask", "random", n_boot=100)
    assert censored["verdict"] == "later" and np.isnan(censored["mean_difference"]) and censored["both_crossed"] == 0
    # seeds {0, 1} against {1, 2}: one shared seed, so every run against every run, unpaired
    shifted = pd.concat([steps[(steps["strategy"] == "random") & (steps["pretrain_seed"] > 0)],
                         steps[(steps["strategy"] == "genemask") & (steps["pretrain_seed"] < 2)]])
    unpaired = transition.step_contrast(shifted, "genemask", "random", n_boot=100)
    assert (unpaired["paired"], unpaired["seeds"], unpaired["later_in"], unpaired["verdict"]) == (False, 4, 4, "later")


def fewshot_rows(strategy: str, steps: int, shift: float, schedule: int = 10_000) -> list[dict]:
    label = f"{strategy}@{steps}" + (f"of{schedule}" if steps != schedule else "") + ":tiny"
    rng = np.random.default_rng(abs(hash((strategy, steps))) % 2**32)
    return [{"method": label, "pretrain_strategy": strategy, "pretrain_steps": steps, "pretrain_seed": p,
             "dataset": d, "shot": 10, "seed": s, "metric": "mcc", "value": 0.3 + shift + 0.01 * rng.standard_normal()}
            for p in range(3) for d in ("a", "b") for s in range(4)]


def test_downstream_gap_per_step():
    results = pd.DataFrame([*fewshot_rows("random", 2000, 0.0), *fewshot_rows("genemask", 2000, 0.0),
                            *fewshot_rows("global", 2000, -0.1),
                            *fewshot_rows("random", 10_000, 0.0), *fewshot_rows("genemask", 10_000, 0.1),
                            *fewshot_rows("global", 10_000, 0.0)])
    table = transition.downstream_by_step(results, n_boot=300)
    assert set(table["step"]) == {2000, 10_000} and table["pretrain_seeds"].eq(3).all()
    genemask = table[table["strategy"] == "genemask"].set_index("step")
    assert genemask.loc[2000, "verdict"] == "no difference detected" and genemask.loc[10_000, "verdict"] == "better"
    assert table.loc[table["strategy"] == "random", "verdict"].isna().all()
    pairs = transition.contrasts_by_step(results, [("genemask", "global"), ("cmgems", "random")], n_boot=300)
    assert pairs[["a", "b", "step"]].values.tolist() == [["genemask", "global", 2000], ["genemask", "global", 10_000]]
    assert pairs["diff_mean"].tolist() == pytest.approx([0.1, 0.1], abs=0.02)


def test_curves_read_the_transition_stage(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path))
    stage = tmp_path / "cpu" / "transition"
    KEY = "0123456789abcdef"  # a cell key, as the store reads them (16 hex digits)
    (stage / KEY).mkdir(parents=True)
    pd.DataFrame([{"key": KEY, "model": "tiny", "steps": 10_000, "strategy": "cmgems", "seed": 1, "switch_threshold": 20.0,
                   "batch_size": 16, "max_len": 128, "masking_options": "{}", "rank_table": "@pmi/" + "0" * 16 + "/kmer_ranking.csv"}]
                 ).to_csv(stage / "cells.csv", index=False)
    pd.DataFrame({"step": [1, 250, 500], "loss": [8.1, 8.0, 7.9], "lr": [1e-5, 1e-3, 2e-3],
                  "val_perplexity": [np.nan, 3000.0, 2500.0], "yardstick_loss": [np.nan, 8.05, 7.6]}
                 ).to_csv(stage / KEY / "metrics.csv", index=False)
    (stage / KEY / "summary.json").write_text(json.dumps({"switch_step": 500}))
    frame = transition.curves("cpu")
    assert frame["step"].tolist() == [250, 500] and frame["switch_step"].eq(500).all()
    assert frame["method"].iloc[0] == "cmgems[switch=20]@10000:tiny" and frame["pretrain_seed"].iloc[0] == 1


def test_end_points_under_both_protocols_use_the_same_checkpoints_and_shots():
    tuned = pd.DataFrame([*fewshot_rows("random", 10_000, 0.0), *fewshot_rows("genemask", 10_000, 0.1)])
    probe = pd.DataFrame([*fewshot_rows("random", 2000, 0.0), *fewshot_rows("genemask", 2000, 0.3),
                          *fewshot_rows("random", 10_000, 0.0), *fewshot_rows("genemask", 10_000, -0.1)])
    probe = pd.concat([probe, probe.assign(shot=100, value=probe["value"] + 0.5)])  # shots the fine-tuning did not run
    scores, contrasts = transition.end_point_protocols(tuned, probe, [("genemask", "random"), ("cmgems", "random")],
                                                       n_boot=300)
    got = contrasts.set_index("protocol")
    assert list(contrasts["a_strategy"]) == ["genemask", "genemask"] and set(contrasts["b"]) == {"random@10000:tiny"}
    assert got.loc["fine-tuning", "verdict"] == "better" and got.loc["probe", "verdict"] == "worse"
    assert got.loc["probe", "mean_difference"] == pytest.approx(-0.1, abs=0.02)  # the 2K and 100-shot rows left out
    assert set(scores["method"]) == {"random@10000:tiny", "genemask@10000:tiny"}
    only_tuned, _ = transition.end_point_protocols(tuned, None, [("genemask", "random")], n_boot=100)
    assert set(only_tuned["protocol"]) == {"fine-tuning"}
    with pytest.raises(ValueError, match="several methods per strategy"):
        transition.end_point_protocols(pd.concat([tuned, pd.DataFrame(fewshot_rows("random", 2000, 0.0))]), None, [])


def test_contrasts_by_step_table_is_one_row_per_question_descriptive():
    results = pd.DataFrame([*fewshot_rows("random", 2000, 0.0), *fewshot_rows("genemask", 2000, 0.0),
                            *fewshot_rows("random", 10_000, 0.0), *fewshot_rows("genemask", 10_000, 0.1),
                            *fewshot_rows("global", 10_000, -0.1)])
    table = transition.contrasts_by_step_table(results, n_boot=300)
    assert list(table.index) == ["GeneMask vs random", "Global vs random"]  # the questions' order; absent pairs left out
    assert list(table.columns) == ["runs", "2,000 steps", "10,000 steps"]  # no "across the transition" verdict movement
    cell = table.loc["GeneMask vs random", "10,000 steps"]
    # one line, "+0.100 ±0.012": the effect and its interval only, no mark or word (the bootstrap describes)
    assert re.fullmatch(r"\+0\.\d{3} ±0\.\d{3}", cell), cell
    assert table.loc["Global vs random", "2,000 steps"] == "" and table.loc["Global vs random", "runs"] == 3


def test_end_points_are_the_end_point_stage_rows_with_the_untrained_model():
    frame = pd.DataFrame({"stage": [transition.FINETUNE_STAGE, transition.FINETUNE_STAGE, "finetune-transition-6k",
                                    transition.LONG_FINETUNE_STAGE],
                          "pretrain_strategy": ["random", "none", "random", "random"], "value": [1.0, 0.5, 2.0, 3.0]})
    assert transition.end_points(frame)["value"].tolist() == [1.0, 0.5]
    # a schedule whose stage did not fine-tune the untrained model borrows its rows (fine-tuned once)
    assert transition.end_points(frame, transition.LONG_FINETUNE_STAGE)["value"].tolist() == [3.0, 0.5]
    assert transition.end_points(frame[frame.stage != transition.FINETUNE_STAGE]) is None
    assert transition.end_points(None) is None


def test_display_tables_of_transition_steps():
    frame = pd.concat([*(curve("random@10000:tiny", "random", s, 4000 + 500 * s) for s in range(3)),
                       *(curve("genemask@10000:tiny", "genemask", s, 7000) for s in range(2)),
                       curve("genemask@10000:tiny", "genemask", 2, None)])
    steps = transition.transition_steps(frame)
    table = transition.crossing_table(steps)
    assert table.loc["genemask", "runs crossed"] == "2 of 3" and table.loc["genemask", "range"] == "7,250–7,250"
    assert table.loc["random", transition.STEP_COLUMN].startswith("4,750 ±")  # one line (issue 23)
    censored = transition.crossing_table(steps[steps["strategy"] == "genemask"].assign(crossed=False, transition_step=np.nan))
    assert censored.loc["genemask", transition.STEP_COLUMN] == "none by 10,000"
    seeds = transition.seed_table(steps)
    assert list(seeds.columns) == ["seed 0", "seed 1", "seed 2"] and seeds.loc["genemask", "seed 2"] == ""
    assert seeds.loc["random", "seed 1"] == "4,750"
    contrasts = transition.step_contrast_table(steps, transition.STEP_PAIRS)
    assert list(contrasts.index) == ["genemask − random"]  # pairs with an absent strategy are left out
    assert contrasts.loc["genemask − random", "a after b / before b"] == "3 / 0 of 3 seeds"
    assert "verdict" not in contrasts.columns  # the sign count describes; "every seed agrees" is no test
    assert all("descriptive" in c for c in contrasts.columns if "95 %" in c)
    assert transition.step_contrast_table(steps, [("global", "random")]) is None
    long = transition.transition_steps(curve("genemask@16000:tiny", "genemask", 0, 12_000, last=16_000))
    both = transition.crossing_by_schedule({"10K": steps, "16K": long})
    assert both.loc["genemask", "16K"] == "12,250 ±0 (1 of 1)" and both.loc["random", "16K"] == ""
    assert both.loc["genemask", "10K"].endswith("(2 of 3)")


def test_display_tables_of_downstream_scores():
    results = pd.DataFrame([*fewshot_rows("random", 2000, 0.0), *fewshot_rows("genemask", 2000, 0.0),
                            *fewshot_rows("random", 10_000, 0.0), *fewshot_rows("genemask", 10_000, 0.1)])
    scores, diffs = transition.by_step_tables(transition.downstream_by_step(results, n_boot=200))
    assert list(scores.columns) == ["2,000 steps", "10,000 steps"] and set(scores.index) == {"genemask", "random"}
    assert re.fullmatch(r"\+0\.\d{3} ±0\.\d{3}", diffs.loc["genemask", "10,000 steps"])  # no word, no mark
    assert list(diffs.columns) == ["2,000 steps", "10,000 steps"]
    _, none = transition.by_step_tables(transition.downstream_by_step(results[results.pretrain_strategy == "random"], n_boot=50))
    assert none is None
    tuned = pd.DataFrame([*fewshot_rows("random", 10_000, 0.0), *fewshot_rows("genemask", 10_000, 0.1)])
    pair_scores, contrasts = transition.end_point_protocols(tuned, None, transition.END_POINT_PAIRS, n_boot=200)
    score_table, by_pair = transition.protocol_tables(pair_scores, contrasts)
    assert score_table.loc["genemask@10000:tiny", "fine-tuning"].endswith("(3 runs)")
    assert list(by_pair.index) == ["genemask@10000:tiny − random@10000:tiny"]
    _, by_question = transition.protocol_tables(pair_scores, contrasts, transition.QUESTIONS)
    assert list(by_question.index) == ["GeneMask vs random"] and re.fullmatch(r"\+0\.\d{3} ±0\.\d{3}", by_question.iloc[0, 0])


def test_scale_text_reads_the_runs_recorded_parameters(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"parameters": {
        "model": "tiny", "steps": 16_000, "batch_size": 16, "max_len": 128, "lr": 0.004, "warmup": 0.05,
        "eval_steps": 250, "eval_size": 256, "keep_steps": [2000, 12_000]}}))
    pd.DataFrame({"step": [1, 2, 3], "tokens": [1_000_000, 1_500_000, 700_000]}).to_csv(tmp_path / "metrics.csv", index=False)
    stage_runs = pd.DataFrame({"dir": [tmp_path] * 3, "pretrain_strategy": ["random", "random", "cmgems"],
                               "pretrain_seed": [0, 1, 0], "pretrain_steps": [16_000] * 3,
                               "pretrain_switch_threshold": [np.nan, np.nan, 20.0]})
    text = transition.scale_text(stage_runs)
    assert text.startswith("`tiny` model, 3 runs: 2 strategies × 1–2 pretraining seeds, 16,000 steps of 16 sequences")
    assert "(3.2 M tokens seen (non-padding) by a run)" in text and "5 % warmup (800 steps)" in text  # the logged tokens
    assert "kept at 2,000, 12,000 steps" in text and text.endswith("less than 20 between evaluations.")


def test_interval_legend_says_the_cells_are_descriptive():
    assert "descriptive" in transition.INTERVAL_LEGEND and "▲" not in transition.INTERVAL_LEGEND


def test_a_run_far_from_its_seeds_is_named_and_kept():
    """Random seed 3 drops a second time (final perplexity e^4.0 against e^5.8): named with its ratio to
    the other seeds' median; a spread of 1.4x is not; a method with two runs has no "others" to judge by."""
    frames = [curve("random@10000:tiny", "random", s, 3000) for s in range(4)]
    frames[3] = frames[3].assign(yardstick_loss=np.where(frames[3].step >= 8000, 4.0, frames[3].yardstick_loss))
    frames[1] = frames[1].assign(yardstick_loss=frames[1].yardstick_loss + np.log(1.4))
    frames += [curve("global@10000:tiny", "global", s, None) for s in range(2)]
    frames[-1] = frames[-1].assign(yardstick_loss=frames[-1].yardstick_loss + 2.0)
    unusual = transition.unusual_runs(pd.concat(frames, ignore_index=True))
    assert unusual[["method", "pretrain_seed", "step"]].values.tolist() == [["random@10000:tiny", 3, 10_000]]
    final = float(frames[0].yardstick_loss.iloc[-1])
    assert unusual.ratio.iloc[0] == pytest.approx(np.exp(4.0) / np.exp(final))
    text = transition.unusual_text(unusual)
    assert "`random@10000:tiny` seed 3" in text and "kept in every statistic" in text
    assert transition.unusual_text(transition.unusual_runs(pd.concat(frames[:3], ignore_index=True))) is None
    assert transition.unusual_runs(pd.DataFrame()).empty
