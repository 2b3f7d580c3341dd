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
