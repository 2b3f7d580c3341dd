"""The published values (genemask.published), the side-by-side report functions (report.papers) and the
claims ledger (report.ledger): spot checks of the transcription against paper_numbers.md, the
internal-consistency facts paper_numbers.md establishes, and the report functions on small frames and on
a frozen copy of a few committed results (tests/fixtures/papers)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from genemask import paths, published
from genemask.report import ledger, papers

FIXTURES = Path(__file__).parent / "fixtures" / "papers"


def one(paper, table, **where):
    frame = published.values(paper, table, **where)
    assert len(frame) == 1, frame
    return frame.iloc[0]


# ------------------------------------------------------------------------------ the transcription

@pytest.mark.parametrize("paper, table, where, value, sd, sig", [
    ("GeneMask", "T1", dict(block="DNABERT", model="GeneMaskBest", dataset="prom-300", shots=10, metric="accuracy"), 0.676, 0.054, "**"),
    ("GeneMask", "T1", dict(block="DNABERT", model="ORI 120K", dataset="splice-40", shots=1000, metric="accuracy"), 0.496, 0.109, ""),
    ("GeneMask", "T1", dict(block="LOGO", model="GeneMask 10K", dataset="cohn-enh", shots=500, metric="auc"), 0.709, 0.04, "**"),
    ("GeneMask", "T1", dict(block="LOGO", model="ORI 10K", dataset="prom-core", shots=10, metric="auc"), 0.557, 0.064, ""),
    ("GeneMask", "T4", dict(model="w/ GB", dataset="splice-40", shots=1000), 0.693, 0.02, ""),
    ("CM-GEMS", "T4", dict(model="Global 10K", dataset="silencer", shots=10), 0.768, 0.062, ""),
    ("CM-GEMS", "T3", dict(model="CM-GEMS 10K", metric="mcc_x100"), 63.09, 17.49, ""),
])
def test_spot_checks_against_paper_numbers(paper, table, where, value, sd, sig):
    row = one(paper, table, **where)
    assert row.value == value and row.sd == pytest.approx(sd) and row.sig == sig
    assert row.tag == "Q" and row.source


@pytest.mark.parametrize("table, block, model, task, value", [
    ("T2", "LOGO", "CM-GEMS 10K", "mouse/2", 78.19), ("T2", "baseline", "DNABERT-2 120K (BPE)", "mean (non-human)", 60.54),
    ("T2", "DNABERT", "GeneMask 10K", "prom/prom_300_tata", 79.76), ("T6", "DNABERT", "CM-GEMS 1K", "prom/prom_300_all", 87.05),
    ("T6", "LOGO", "CM-Step 1K", "mouse/4", 35.02), ("Fig3", "LOGO", "CM-GEMS 1K", "mean (non-human)", 47.44),
])
def test_gue_spot_checks(table, block, model, task, value):
    assert one("CM-GEMS", table, block=block, model=model, dataset=task).value == value


def test_table_sizes_match_the_papers():
    counts = published.values().groupby(["paper", "table"]).size()
    assert counts[("GeneMask", "T1")] == (4 + 2) * 5 * 4 * 2  # 4 DNABERT rows + 2 LOGO rows, × 5 shots × 4 datasets × 2 metrics
    assert counts[("GeneMask", "T4")] == 3 * 5 * 4
    assert counts[("CM-GEMS", "T2")] == 12 * (27 + 2)
    assert counts[("CM-GEMS", "T6")] == 6 * (27 + 2)
    assert counts[("CM-GEMS", "T4")] == 6 * 11
    assert set(published.values().tag) <= set(published.TAGS)


def test_genemask_best_is_the_per_cell_maximum_of_the_three_variants():
    check = papers.genemask_best_check()
    assert len(check) == 20
    assert (check["GeneMaskBest (T1)"] == check["max of T4"]).all()
    assert set(check.loc[(check.dataset == "Splice-40") & (check.shots == 1000), "chosen variant"]) == {"GeneMask"}


def test_cmgems_printed_species_means_are_the_row_means():
    for table in ("T2", "T6"):
        frame = published.values("CM-GEMS", table)
        rows = frame[~frame.dataset.str.startswith("mean")]
        for (block, model), group in rows.groupby(["block", "model"]):
            for species in ("human", "non-human"):
                members = group[group.dataset.map(papers.species) == species]
                printed = one("CM-GEMS", table, block=block, model=model, dataset=f"mean ({species})")
                if "misprinted" in printed.note:  # the one printed mean that its rows do not give
                    assert abs(members.value.mean() - printed.value) > 0.05
                    continue
                assert members.value.mean() == pytest.approx(printed.value, abs=0.01), (table, block, model, species)
                assert len(members) == (12 if species == "human" else 15)


def test_cmgems_table3_is_a_paired_t_over_table2_with_population_sd():
    wide = papers.published_gue_wide("T2")
    test = papers.paired_t(wide, "DNABERT: CM-GEMS 10K",
                           ["baseline: DNABERT 120K", "baseline: DNABERT-2 120K (k-mer)", "DNABERT: GeneMask 10K"]).set_index("model")
    for column, model in (("baseline: DNABERT 120K", "DNABERT 120K"), ("baseline: DNABERT-2 120K (k-mer)", "DNABERT-2 120K (k-mer)"),
                          ("DNABERT: GeneMask 10K", "GeneMask 10K"), ("DNABERT: CM-GEMS 10K", "CM-GEMS 10K")):
        printed = one("CM-GEMS", "T3", model=model, metric="mcc_x100")
        assert test.loc[column, "tasks"] == 27
        assert test.loc[column, "mean"] == pytest.approx(printed.value, abs=0.006)
        assert test.loc[column, "sd"] == pytest.approx(printed.sd, abs=0.006)
        if model != "CM-GEMS 10K":
            assert test.loc[column, "p_value"] == pytest.approx(one("CM-GEMS", "T3", model=model, metric="p_value").value, abs=0.0006)


def test_cmgems_table4_means_and_reused_genemask_rows():
    t4 = published.values("CM-GEMS", "T4")
    for model, group in t4.groupby("model"):
        cells = group[group.dataset != "mean"]
        assert len(cells) == 10
        assert cells.value.mean() == pytest.approx(group[group.dataset == "mean"].value.iloc[0], abs=0.0006)
    ori = one("GeneMask", "T1", block="DNABERT", model="ORI 10K", dataset="prom-300", shots=50, metric="accuracy")
    assert one("CM-GEMS", "T4", model="DNABERT 10K", dataset="prom-300", shots=50)[["value", "sd"]].tolist() == [ori.value, ori.sd]
    assert "24 of 24" in ledger.CHECKS["reused_fewshot_rows"](ledger.Context()).ours


def test_genemask_tables_2_and_3_are_ratios_of_means_within_rounding():
    acc = published.values("GeneMask", "T1", metric="accuracy")
    logo = papers.improvement_by_shot(acc[acc.block == "LOGO"], "GeneMask 10K", "ORI 10K")
    printed = published.values("GeneMask", "T2", block="LOGO").set_index("shots")["value"]
    assert (logo - printed).abs().max() < 0.15
    best = papers.improvement_by_shot(acc[acc.block == "DNABERT"], "GeneMaskBest", "ORI 120K")
    assert (best - published.values("GeneMask", "T3").set_index("shots")["value"]).abs().max() < 0.15


def test_cmgems_fig4_readings_agree_with_table4_and_the_quoted_drops():
    f4 = published.values("CM-GEMS", "Fig4")
    t4 = published.values("CM-GEMS", "T4", model="DNABERT 10K")
    for n in (10, 50):
        base = t4[(t4.shots == n)].value.mean()
        at_15 = f4[(f4.model == "random masking 15%") & (f4.shots == n) & (f4.steps == 10000)].value.iloc[0]
        at_30 = f4[(f4.model == "random masking 30%") & (f4.shots == n) & (f4.steps == 10000)].value.iloc[0]
        drop = f4[(f4.metric == "pct_drop") & (f4.shots == n)].value.iloc[0]
        assert at_15 == pytest.approx(base, abs=0.001)  # a reading off the figure: ±1 in the last digit
        assert at_30 == pytest.approx(base * (1 - drop / 100), abs=0.001)


def test_cmgems_fig3_bars_are_table6_means_and_sota_best():
    for block, model in (("LOGO", "CM-GEMS 1K"), ("DNABERT", "GeneMask 1K")):
        for species in ("human", "non-human"):
            bar = one("CM-GEMS", "Fig3", block=block, model=model, dataset=f"mean ({species})").value
            assert bar == one("CM-GEMS", "T6", block=block, model=model, dataset=f"mean ({species})").value
    sota = published.values("CM-GEMS", "T2", block="baseline")
    kmer = sota[sota.model != "DNABERT-2 120K (BPE)"]
    for species in ("human", "non-human"):
        best = kmer[kmer.dataset == f"mean ({species})"].value.max()
        assert one("CM-GEMS", "Fig3", block="baseline", dataset=f"mean ({species})").value == best


def test_anomalies_are_noted_next_to_their_numbers():
    notes = papers.anomalies("GeneMask", "T1")
    assert {"Gene-PMI-VOC", "GeneMask 10K", "ORI 120K"} <= set(notes.model)
    assert "copy error" in one("CM-GEMS", "T2", model="DNABERT-2 120K (k-mer)", dataset="prom/prom_core_all").note


def test_motif_table_matches_the_authors_ranking():
    authors = paths.data_dir() / "genemask" / "Data-A_norm-pmi-score-ranking.csv"
    if not authors.is_file():
        pytest.skip("the authors' Data-A ranking is not under $GENEMASK_DATA")
    from genemask.report.motifs import load_ranking

    table = papers.motif_rank_table({"Data-A": load_ranking(authors)})
    assert (table["paper"] == table["Data-A"]).all()
    assert table.set_index("probe").loc["TATAAA", "paper"] == "242"


def test_a_bad_values_file_names_its_line(tmp_path):
    good = published.read_values()
    bad = good.head(3)[list(published.VALUE_COLUMNS)].astype(str).replace("<NA>", "").replace("nan", "")
    bad.loc[1, "tag"] = "X"
    path = tmp_path / "values.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(ValueError, match="line 3: tag 'X'"):
        published.read_values(path)
    bad.loc[1, "tag"] = "Q"
    bad.loc[2, "value"] = "0.5x"
    bad.to_csv(path, index=False)
    with pytest.raises(ValueError, match="line 4: value '0.5x' is not a number"):
        published.read_values(path)
    with pytest.raises(KeyError, match="no published values"):
        published.values("GeneMask", "T9")


# --------------------------------------------------------------------------- the report functions

def test_pct_improvement_is_the_ratio_of_means():
    assert papers.pct_improvement([0.6, 0.8], [0.5, 0.5]) == pytest.approx(40.0)
    frame = pd.DataFrame({"model": ["a"] * 4 + ["b"] * 4, "dataset": list(papers.FOUR) * 2, "shots": 10,
                          "value": [0.6, 0.6, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5]})
    assert papers.improvement_by_shot(frame, "a", "b")[10] == pytest.approx(20.0)
    assert papers.improvement_by_shot(frame.iloc[1:], "a", "b").empty  # a dataset missing: no cell


def _tiny_results():
    rows = []
    for model, base in (("random@1000:logo", 0.5), ("genemask@1000:logo", 0.6)):
        for seed in range(3):
            for dataset in papers.FOUR:
                for metric, shift in (("accuracy", 0.0), ("mcc", -0.4)):
                    rows.append({"model": model, "dataset": dataset, "shot": 10, "seed": seed, "metric": metric,
                                 "value": base + shift + 0.01 * seed})
    return pd.DataFrame(rows)


def test_fewshot_side_by_side_and_largest_gap():
    results = _tiny_results()
    stats_frame = papers.fewshot_stats(results)
    paper = pd.DataFrame({"model": ["ORI 10K", "GeneMask 10K"], "dataset": "prom-core", "shots": 10, "metric": "accuracy",
                          "value": [0.40, 0.70], "sd": [0.01, 0.02], "sig": ["", "*"]})
    rows = {"ORI 10K": "random@1000:logo", "GeneMask 10K": "genemask@1000:logo"}
    table = papers.fewshot_side_by_side(paper, stats_frame, rows, "accuracy", our_metric="mcc")
    line = table.loc[("Prom-core", 10)]
    pm = "\u2009±\u2009"
    assert line[("ORI 10K", "paper")] == f"0.400{pm}0.010" and line[("GeneMask 10K", "paper")] == f"0.700{pm}0.020*"
    assert line[("ORI 10K", "ours")] == f"0.510{pm}0.010" and line[("ORI 10K", "gap")] == "+0.110"
    assert line[("GeneMask 10K", "ours MCC")] == f"0.210{pm}0.010"
    assert table.loc[("Prom-300", 10)][("ORI 10K", "paper")] == ""  # the paper has no such cell here
    gap = papers.largest_gap(paper, stats_frame, rows, "accuracy")
    assert gap["model"] == "ORI 10K" and gap["gap"] == pytest.approx(0.11)


def test_our_improvement_on_the_frozen_results():
    results = pd.read_csv(FIXTURES / "fewshot_results.csv")
    gains = papers.our_improvement(results, "genemask@1000:logo", "random@1000:logo").set_index("shots")
    assert list(gains.index) == [10, 50, 100] and (gains.seeds == 5).all()
    assert gains.loc[10, "pct"] == pytest.approx(2.81, abs=0.005)
    assert gains.loc[10, "ci95_low"] > 0 > gains.loc[100, "ci95_low"]
    assert papers.main_runs(results.model) == {"random": "random@1000:logo", "genemask": "genemask@1000:logo"}


def test_paired_t_matches_scipy_and_uses_population_sd():
    scores = pd.DataFrame({"a": [1.0, 2.0, 4.0, 3.0], "b": [0.5, 1.0, 3.5, 3.0]}, index=list("wxyz"))
    table = papers.paired_t(scores, "a", ["b"]).set_index("model")
    assert table.loc["b", "p_value"] == pytest.approx(stats.ttest_rel(scores.a, scores.b).pvalue)
    assert table.loc["a", "sd"] == pytest.approx(np.std(scores.a))
    assert np.isnan(table.loc["a", "p_value"])


def test_gue_side_by_side_on_the_frozen_results():
    ours = pd.read_csv(FIXTURES / "gue_scores.csv")
    t6 = published.values("CM-GEMS", "T6", block="LOGO")
    table = papers.gue_side_by_side(t6, ours, {"GeneMask 1K": "genemask@1000:logo"})
    assert len(table) == 13 + 2 and table.index[-2] == "mean (human, 9 tasks)" and table.index[-1] == "mean (non-human, 4 tasks)"
    paper_tf0 = one("CM-GEMS", "T6", block="LOGO", model="GeneMask 1K", dataset="tf/0").value
    assert table.loc["tf/0", ("GeneMask 1K", "paper")] == paper_tf0
    assert table.loc["tf/0", ("GeneMask 1K", "gap")] == pytest.approx(table.loc["tf/0", ("GeneMask 1K", "ours")] - paper_tf0)
    mouse = [t for t in table.index[:-2] if t.startswith("mouse/")]
    assert table.iloc[-1][("GeneMask 1K", "ours")] == pytest.approx(table.loc[mouse, ("GeneMask 1K", "ours")].mean())


def test_perplexity_profile():
    metrics = pd.DataFrame({"step": [1, 50, 100, 150], "val_perplexity": [np.nan, 1200.0, 1100.0, 5.0]})
    profile = papers.perplexity_profile(metrics)
    assert profile["first"] == 1200 and profile["final"] == 5 and profile["collapse_step"] == 150
    frozen = papers.perplexity_profile(pd.read_csv(FIXTURES / "metrics_random_1000.csv"))
    assert frozen["last_step"] == 1000 and frozen["collapse_step"] is None
    assert papers.tokens_seen(pd.read_csv(FIXTURES / "metrics_random_1000.csv")) > 1000 * 16 * 100


def test_motif_rank_table_on_a_small_ranking():
    ranking = pd.DataFrame({"kmer": ["TATAAA", "ACCTCC", "CCTCCA", "GGGGGG"], "rank": [3, 1, 7, 2]})
    table = papers.motif_rank_table({"toy": ranking}).set_index("probe")
    assert table.loc["TATAAA", "toy"] == "3" and table.loc["CCTCC", "toy"] == "1, 7"
    assert table.loc["GCAGC", "toy"] == ""


# ------------------------------------------------------------------------------------ the ledger

def test_every_claim_has_a_registered_check_or_a_stated_verdict():
    claims = ledger.ledger(ledger.Context())  # nothing run: computed checks fall back to "not testable here"
    assert set(claims.verdict) <= set(ledger.VERDICTS)
    assert claims["id"].is_unique and len(claims) >= 15
    assert ledger.verdict_counts(claims).sum() == len(claims)
    assert claims.set_index("id").loc["GM-1", "verdict"] == "not testable here"
    found = ledger.findings(ledger.Context()).set_index("id")
    assert set(found.status) <= set(ledger.FINDINGS)
    assert found.loc["M-1", "evidence"].startswith("20 of 20")
    assert "p = 0.112 (printed 0.112)" in found.loc["M-6", "evidence"]


def test_published_checks_find_the_papers_inconsistencies():
    claims = ledger.ledger(ledger.Context()).set_index("id")
    assert claims.loc["GM-6", "verdict"] == "contradicted here" and "11 of 20" in claims.loc["GM-6", "our evidence"]
    assert claims.loc["GM-4", "verdict"] == "contradicted here" and "9 of 10" in claims.loc["GM-4", "our evidence"]
    assert claims.loc["CM-1", "verdict"] == "contradicted here" and "BPE" in claims.loc["CM-1", "reason"]


def _plan_row(word, effect=0.01, low=-0.02, high=0.04, **extra):
    return {"family": "claims-directional", "evidence": "finetune-16k", "id": "GM-1", "a": "genemask", "b": "random",
            "metric": "accuracy", "effect": effect, "ci_low": low, "ci_high": high, "p": 0.4, "p_holm": 0.8, "mde": 0.08,
            "margin": 0.0281, "tost_p": 0.3, "n_seeds": 4, "runs_a": 4, "runs_b": 4, "paired": True, "word": word, **extra}


def test_claim_verdicts_from_the_plans_words():
    assert ledger.claim_verdict(_plan_row("better", 0.1, 0.05, 0.15))[0] == "supported here"
    assert ledger.claim_verdict(_plan_row("better", 0.1, 0.05, 0.15), claimed=-1)[0] == "contradicted here"
    assert ledger.claim_verdict(_plan_row("worse", -0.1, -0.15, -0.05), claimed=-1)[0] == "supported here"
    verdict, reason = ledger.claim_verdict(_plan_row("inconclusive"))
    assert verdict == "inconclusive at our scale" and "0.08" in reason and "cannot be ruled out" in reason
    assert ledger.claim_verdict(_plan_row("equivalent within ±0.028"))[0] == "not reproduced at our scale"
    one_run = _plan_row("no verdict (one pretraining run)", np.nan, np.nan, np.nan)
    assert ledger.claim_verdict(one_run) == ("not testable here", "no verdict (one pretraining run)")
    assert ledger.combine(["supported here", "inconclusive at our scale"]) == "inconclusive at our scale"
    assert ledger.combine(["supported here", "supported here"]) == "supported here"


def test_ledger_judges_on_the_best_evidence_first():
    """The primary evidence (16K fine-tuning) gives the verdict even where a second lens says better;
    an evidence lacking a method is skipped; the old bootstrap word is shown, never used."""
    rows = [_plan_row("inconclusive", old_verdict="better"),
            _plan_row("better", 0.05, 0.01, 0.09, evidence="logo-1k-probe"),
            _plan_row("not run on this evidence", np.nan, np.nan, np.nan, id="CM-6"),
            _plan_row("no verdict (one pretraining run)", np.nan, np.nan, np.nan, id="CM-6", evidence="logo-1k-probe"),
            _plan_row("inconclusive", id="GM-2@10"), _plan_row("better", 0.05, 0.01, 0.09, id="GM-2@50")]
    ctx = ledger.Context(plan=pd.DataFrame(rows), scales={"finetune-16k": "`tiny`, 16,000 steps"})
    claims = ledger.ledger(ctx).set_index("id")
    assert claims.loc["GM-1", "verdict"] == "inconclusive at our scale"
    assert "16K fine-tuning" in claims.loc["GM-1", "our evidence"] and "`tiny`, 16,000 steps" in claims.loc["GM-1", "our evidence"]
    assert "LOGO 1K probe" in claims.loc["GM-1", "our evidence"] and "Old rule (same runs): better" in claims.loc["GM-1", "our evidence"]
    assert claims.loc["CM-6", "verdict"] == "not testable here" and "one pretraining run" in claims.loc["CM-6", "reason"]
    assert claims.loc["GM-2", "verdict"] == "inconclusive at our scale"  # 10 shots inconclusive, 50 shots better
    assert claims.loc["CM-4", "verdict"] == "not testable here"  # the plan table has no CM-4 rows


def test_cm2_has_one_ratio_over_the_same_tasks():
    sota = papers.published_gue_wide("T2", "baseline")
    human = [t for t in sota.index if papers.species(t) == "human"][:2]
    ours = pd.Series(50.0, index=human)
    shares = papers.share_of_sota(ours)
    best = sota.loc[human, list(papers.SOTA_MODELS)].mean().max()
    assert list(shares.index) == ["human"] and shares.loc["human", "share"] == pytest.approx(50.0 / best)


def test_gm8_counts_kinds_of_sequence_not_datasets():
    top = pd.DataFrame({"ranking": "ours", "top": 50, "dataset": ["prom-core", "prom-300", "cohn-enh"],
                        "fisher_p": [0.001, 0.001, 0.001], "fisher_odds_ratio": [5, 5, 5], "beyond_gc_cpg_p": [0.001, 0.01, 0.88]})
    families = ledger.enrichment_families(top)
    assert families["promoters"] == ["prom-core", "prom-300"] and families["others"] == ["cohn-enh"]
    evidence = ledger.CHECKS["motif_enrichment"](ledger.Context(enrichment=top))
    assert evidence.verdict == "not reproduced at our scale" and "p 0.88" in evidence.ours and "3 of 3 datasets" in evidence.ours
    held = top.assign(beyond_gc_cpg_p=[0.001, 0.01, 0.01])
    assert ledger.CHECKS["motif_enrichment"](ledger.Context(enrichment=held)).verdict == "supported here"


def test_printed_means_keep_the_papers_precision():
    paper = published.values("CM-GEMS", "T2", block="LOGO")
    side = pd.DataFrame({("CM-GEMS 10K", "ours"): [60.0, 40.0, 60.0, 40.0]},
                        index=["prom/prom_300_all", "mouse/0", "mean (human, 1 tasks)", "mean (non-human, 1 tasks)"])
    side.columns = pd.MultiIndex.from_tuples(side.columns)
    table = papers.printed_means(paper, side, ["CM-GEMS 10K", "GeneMask 10K"])
    assert table.loc["CM-GEMS 10K", ("human", "paper, all its tasks [Q]")] == "67.77"  # as printed, not 67.8
    assert table.loc["CM-GEMS 10K", ("non-human", "ours, our 1 tasks")] == "40.0"
    assert table.loc["GeneMask 10K", ("human", "ours, our 1 tasks")] == ""  # not run here
    assert published.values("CM-GEMS", "Fig3", model="CM-GEMS 1K", block="LOGO")["printed"].tolist() == ["67.79", "47.44"]
