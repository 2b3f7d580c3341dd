"""genemask.report.lenses: judging on the best evidence first, and the one-line interval cells."""
import numpy as np
import pandas as pd
import pytest

from genemask.report import lenses


def row(evidence, word, effect=0.02, low=-0.03, high=0.07, **extra):
    return {"family": "f", "evidence": evidence, "id": "q", "a": "a", "b": "b", "metric": "mcc", "effect": effect,
            "ci_low": low, "ci_high": high, "p": 0.3, "p_holm": 0.6, "mde": 0.1, "margin": 0.05, "tost_p": 0.4,
            "n_seeds": 4, "runs_a": 4, "runs_b": 4, "paired": True, "word": word, **extra}


TABLE = pd.DataFrame([row("finetune-16k", "not run on this evidence", np.nan, np.nan, np.nan),
                      row("probe-16k", "inconclusive", old_verdict="better"),
                      row("logo-1k-probe", "better", 0.05, 0.01, 0.09)])


def test_primary_is_the_first_evidence_that_holds_both_methods():
    assert list(lenses.lenses(TABLE, "q")["evidence"]) == ["probe-16k", "logo-1k-probe"]
    assert lenses.primary(TABLE, "q")["word"] == "inconclusive"  # not the LOGO "better"
    assert lenses.primary(TABLE, "other") is None and lenses.lenses(None, "q").empty


def test_compact_cells_fit_one_line():
    assert lenses.compact(0.047, -0.023, 0.117) == "+0.047 ±0.070"
    assert lenses.compact(-0.5, -1.0, 0.0, 1) == "−0.5 ±0.5"
    assert lenses.compact(np.nan, np.nan, np.nan) == "—"
    assert lenses.cell(row("x", "better", 0.05, 0.01, 0.09)) == "+0.050 ±0.040 ▲"
    assert lenses.cell(row("x", "no verdict (one pretraining run)", np.nan, np.nan, np.nan)) == "○"
    assert lenses.symbol("equivalent within ±0.050") == "≈" and lenses.symbol("later") == "▲"
    with pytest.raises(ValueError):
        lenses.symbol("no difference detected")  # the old rule's word has no symbol: never shown as a verdict


def test_line_and_short_words():
    text = lenses.line(row("x", "inconclusive"))
    assert text.startswith("+0.020 [−0.030, +0.070], p 0.3 (Holm 0.6), MDE 0.100, 4 seed pairs: inconclusive")
    assert lenses.seeds_text(row("x", "better", paired=False, runs_a=3, runs_b=4)) == "3 / 4 runs"
    assert lenses.short_word("equivalent within ±0.028") == "equivalent ±0.028"
    assert lenses.short_word("no verdict (one pretraining run)") == "no verdict: one run"


def test_contrast_table_puts_old_beside_new():
    table = lenses.contrast_table(TABLE)
    assert list(table.index.get_level_values("evidence")) == ["16K probe", "LOGO 1K probe"]
    first = table.iloc[0]
    assert first["a − b"] == "+0.020 ±0.050" and first["verdict"] == "inconclusive" and first["old rule"] == "better"
    assert first["seeds"] == "4 pairs" and first["MDE"] == "0.100"


def test_describe_scale_reads_what_is_there():
    parts = {"model": "tiny", "steps": 16000, "batch": 16, "max_len": 128, "tokens": 30.8e6, "protocol": "linear probe",
             "downstream_seeds": 5}
    assert lenses.describe_scale(parts) == "`tiny`, 16,000 steps × 16 seq. ≤ 128 tokens (30.8 M tokens), linear probe, 5 downstream seeds"
    assert lenses.describe_scale({"model": "logo", "steps": 1000, "downstream_seeds": 1}) == "`logo`, 1,000 steps, 1 downstream seed"


def question_rows():
    rows = [row("finetune-16k", "inconclusive", id="gm-vs-random", a="genemask@16000:tiny", b="random@16000:tiny"),
            row("logo-1k-probe", "worse", -0.03, -0.05, -0.01, id="gm-vs-random", a="genemask@1000:logo", b="random@1000:logo"),
            row("finetune-16k", "not yet run", np.nan, np.nan, np.nan, id="curriculum-vs-reverse", a="cmgems", b="cmgems-reverse"),
            row("logo-1k-rate", "no verdict (one pretraining run)", np.nan, np.nan, np.nan, id="masking-more"),
            row("curves-16k", "later", 3250, 1000, 5500, id="step-gm-vs-random", metric="transition_step", a="genemask", b="random")]
    return pd.DataFrame(rows)


def test_findings_answers_one_line_per_question():
    scales = {"finetune-16k": "`tiny`, 16,000 steps", "logo-1k-probe": "`logo`, 1,000 steps"}
    out = lenses.answers(question_rows(), scales, {"absolute": "random < genemask", "own plateau": "random < genemask"})
    assert out[1].startswith("**Scale** — *16K fine-tuning*: `tiny`, 16,000 steps; *LOGO 1K probe*: `logo`, 1,000 steps")
    lines = out[0].split("\n")
    assert len(lines) == 4  # questions without any row are left out
    gm = lines[0]
    assert "16K fine-tuning: +0.020 ±0.050, **inconclusive**, MDE 0.100, 4 seed pairs" in gm
    assert "LOGO 1K, on the plateau: −0.030 ±0.020 ▼ (worse) — another answer" in gm
    assert "*not yet run* (no results of cmgems-reverse on any evidence)" in lines[1]
    assert "Only the LOGO runs, on the plateau, ran it" in lines[2]
    assert "genemask − random: 16K curves: +3,250 ±2,250 steps, **later**" in lines[3] and "random < genemask" in lines[3]


def test_reconcile_says_when_the_lenses_agree():
    best = pd.Series(row("finetune-16k", "inconclusive"))
    assert "the same answer before the transition" in lenses.reconcile([(best, pd.Series(row("logo-1k-probe", "inconclusive")))])
    assert lenses.reconcile([(best, None)]) == "The LOGO 1K runs did not test it."
    # a control declared at LOGO 1K but never run there gives no answer to reconcile (the reverse curriculum)
    never = pd.Series(row("logo-1k-probe", "not yet run", np.nan, np.nan, np.nan))
    assert lenses.reconcile([(best, never)]) == "The LOGO 1K runs did not test it."


def test_contrast_tables_one_per_evidence_under_its_scale():
    out = lenses.contrast_tables(TABLE, {"probe-16k": "`tiny`, 16,000 steps", "logo-1k-probe": "`logo`, 1,000 steps"})
    assert out[0] == "**16K probe** (`tiny`, 16,000 steps):" and out[2] == "**LOGO 1K probe** (`logo`, 1,000 steps):"
    assert list(out[1].data.index) == ["q"] and out[1].data.loc["q", "old rule"] == "better"
    assert lenses.contrast_tables(TABLE.iloc[:1], {}) == []


def test_reconcile_names_the_plateau_answer_in_words_when_it_differs():
    best = pd.Series(row("finetune-16k", "inconclusive"))
    line = lenses.reconcile([(best, pd.Series(row("logo-1k-probe", "equivalent within ±0.050")))])
    assert "(equivalent" in line and "another answer, from runs that never left the plateau" in line


def test_contrast_table_with_margins_shows_no_old_rule_and_counts_censored_runs():
    steps = pd.DataFrame([row("curves-10k", "later", 4083, 3366, 4800, metric="transition_step", margin=500.0,
                              censored_a=3, censored_b=0, old_verdict="later"),
                          row("curves-10k", "no verdict (too few pretraining seeds): neither crossed in 3 seeds", np.nan,
                              np.nan, np.nan, id="r", metric="transition_step", margin=500.0)])
    table = lenses.contrast_table(steps, beside="margin")
    assert "old rule" not in table.columns and table["± margin"].tolist() == ["500", "500"]
    first = table.iloc[0]
    assert first["a − b"] == "+4,083 ±717" and first["seed pairs"] == "4" and first["verdict"] == "later"
    assert table["censored"].tolist() == ["3", ""]
    second = table.iloc[1]  # the reason stays, where the effect would be
    assert second["verdict"] == "no verdict" and second["a − b"] == "neither crossed" and second["seed pairs"] == "3"
    assert "censored" not in lenses.contrast_table(TABLE, beside="margin").columns  # downstream scores: no lower bounds
    with pytest.raises(ValueError):
        lenses.contrast_table(steps, beside="both")


def test_contrast_tables_with_margins_name_one_metric_in_the_caption():
    out = lenses.contrast_tables(TABLE, {"probe-16k": "`tiny`, 16,000 steps"}, beside="margin")
    assert out[0] == "**16K probe**, MCC, equivalence margin ±0.050 (`tiny`, 16,000 steps):"
    assert out[2] == "**LOGO 1K probe**, MCC, equivalence margin ±0.050:"
    assert {"metric", "± margin"}.isdisjoint(out[1].data.columns)
    both = pd.concat([TABLE, TABLE.assign(metric="accuracy", margin=0.025)])
    mixed = lenses.contrast_tables(both, {"probe-16k": "`tiny`"}, first_metric_only=False, beside="margin")
    # a table per metric, the scale once an evidence
    assert mixed[0] == "**16K probe**, MCC, equivalence margin ±0.050 (`tiny`):"
    assert mixed[2] == "**16K probe**, accuracy, equivalence margin ±0.025:"
    both = pd.concat([TABLE, TABLE.assign(id="r", margin=0.025)])
    margins = lenses.contrast_tables(both, {}, beside="margin")
    assert margins[0] == "**16K probe**, MCC:" and list(margins[1].data["± margin"]) == ["0.050", "0.025"]


def test_table_word_sets_the_reason_of_no_verdict_apart():
    assert lenses.table_word("no verdict (one pretraining run)") == ("no verdict", "one run")
    assert lenses.table_word("no verdict (too few pretraining seeds): neither crossed in 3 seeds") == ("no verdict", "neither crossed")
    assert lenses.table_word("no verdict (too few pretraining seeds)") == ("no verdict", "too few seeds")
    assert lenses.table_word("equivalent within ±0.050") == ("equivalent", "")  # its margin stands beside
    assert lenses.table_word("later") == ("later", "")


def test_family_caption_declares_the_family_from_the_plan():
    from genemask.report.plan import load_plan

    (family,) = load_plan().page_families("fewshot")
    text = lenses.family_caption(family, pd.DataFrame({"evidence": ["probe-16k", "logo-1k-probe"]}))
    assert text.startswith("**Family `fewshot-vs-random`** — each strategy against random masking")
    assert "4 contrasts in MCC, Holm-adjusted across the family within each evidence" in text
    assert "equivalence margin ±0.050 MCC" in text and text.endswith("evidence, best first: 16K probe, LOGO 1K probe.")
    (paper,) = load_plan().page_families("paper_cmgems")
    assert "(MCC beside, adjusted on its own)" in lenses.family_caption(paper)
    assert "each contrast's own equivalence margin" in lenses.family_caption(paper)
    steps = load_plan().families["transition-steps"]
    assert "equivalence margin ±500 steps" in lenses.family_caption(steps, pd.DataFrame({"evidence": []}))


def test_page_verdicts_declare_every_family_then_tables_then_the_legend():
    from genemask.report.plan import load_plan

    rows = pd.DataFrame([row("probe-16k", "equivalent within ±0.050", family="fewshot-vs-random", id="fs-gm-vs-random"),
                         row("finetune-16k", "not run on this evidence", np.nan, np.nan, np.nan, family="fewshot-vs-random",
                             id="fs-gm-vs-random")])
    out = lenses.page_verdicts("fewshot", rows, {"probe-16k": "`tiny`"})
    assert out[0].startswith("**Family `fewshot-vs-random`**")
    assert out[1] == "**16K probe**, MCC, equivalence margin ±0.050 (`tiny`):"
    assert out[2].data.loc["fs-gm-vs-random", "verdict"] == "equivalent" and out[-1] == lenses.verdict_legend()
    empty = lenses.page_verdicts("transition", pd.DataFrame(), {})
    families = load_plan().page_families("transition")
    assert [t for t in empty if t.startswith("**Family")] == [lenses.family_caption(f, pd.DataFrame()) for f in families]
    assert empty.count("No evidence of this family holds both methods of any contrast yet.") == 2


def test_verdict_legend_names_the_words_and_the_test():
    text = lenses.verdict_legend()
    assert "95 % t interval" in text and "80 % power" in text and "Holm p < 0.05" in text and "▲" not in text
