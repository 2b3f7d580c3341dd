"""The chapters' assembly in report (what a book page shows, section by section), on small results
written into a temporary profile: the numbers a sentence prints are the frames' numbers, and a profile
without results says so instead of failing."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from genemask.report.chapters import bugs

VARIANTS = ("random", "genemask", "genemask-position-v1", "genemask-position-v3")


@pytest.fixture
def results(tmp_path, monkeypatch):
    """An empty results root that report reads ($GENEMASK_RESULTS)."""
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path))
    return tmp_path


def masking_cell(root, profile="tiny"):
    """One masking cell of four variants: masked fractions 0.14/0.15/0.10/0.15, v1 with one anchor."""
    cell = root / profile / "masking" / "0000000000000abc"
    cell.mkdir(parents=True)
    pd.DataFrame({"key": ["0000000000000abc"], "fasta": ["${GENEMASK_DATA}/genome/hg38_chr21_x.fasta"], "n_sequences": [8],
                  "seq_len": [511], "seed": [0], "rank_table": ["/nowhere/ranking.csv"]}).to_csv(cell.parent / "cells.csv", index=False)
    pd.DataFrame({"variant": VARIANTS, "masked_fraction_mean": [0.14, 0.15, 0.10, 0.15],
                  "mean_rank_masked": [1380.0, 1320.0, 1370.0, 1360.0], "mean_rank_unmasked": [1365.0, 1376.0, 1372.0, 1370.0],
                  "fully_hidden_share": [0.02, 0.14, 0.05, 0.13], "mean_span_length": [6.5, 10.2, 8.0, 10.0],
                  "anchors_per_sequence": [0.0, 5.9, 1.0, 5.8]}).to_csv(cell / "masking_summary.csv", index=False)
    pd.DataFrame({"variant": [v for v in VARIANTS for _ in (0, 1)], "span_length": [6, 11] * 4,
                  "count": [90, 10, 40, 60, 70, 30, 45, 55]}).to_csv(cell / "span_lengths.csv", index=False)
    pd.DataFrame({"variant": VARIANTS[1:], "sequences_with_identical_anchors": [0.003, 1.0, 1.0]}).to_csv(
        cell / "position_invariance.csv", index=False)


def test_bugs_chapter_without_results_says_so(results):
    chapter = bugs.Chapter("empty")
    assert "has no masking results yet" in chapter.scale()
    assert chapter.bug1_measured() == ["No masking results for this profile."]
    assert chapter.bug1_effect() is None and chapter.global_measured() == []
    assert "no pretraining results yet" in chapter.pretraining()[0]
    assert "no few-shot results" in chapter.fewshot_section()[0]
    assert chapter.summary().count("—") >= 4  # every measured column is a dash


def test_bugs_chapter_reads_its_frames(results):
    masking_cell(results)
    chapter = bugs.Chapter("tiny")
    assert "8 windows of 511 nt (506 6-mer tokens" in chapter.scale()
    table = chapter.bug1_measured()[0]
    assert table.loc["random", "anchors / seq"] == 0.0 and table.loc["random", "same anchors %"] == "—"
    assert table.loc["genemask", "rank gap"] == 56.0  # 1376 - 1320
    effect = chapter.bug1_effect()
    assert "**100 %** of the sequences" in effect and "at most 0.3 % with token lookup" in effect
    v1_table, figure, text = chapter.selection()
    assert v1_table.loc["genemask-position-v1", "in runs ≥ 11 %"] == pytest.approx(100 * 330 / 750, abs=0.05)
    assert "v1 masks **10.0 %** of the tokens against 15.0 % for v3" in text
    figure.clf()
    assert "v1 masks 10.0 % vs 15.0 % (random 14.0 %)" in chapter.summary()


def test_switch_text_names_the_released_threshold():
    from genemask.identity import RELEASED_SWITCH_THRESHOLD

    assert bugs.switch_text(RELEASED_SWITCH_THRESHOLD, None, 1000) == f"threshold {RELEASED_SWITCH_THRESHOLD:g} (released): never switched in 1,000 steps"
    assert bugs.switch_text(5.0, 650, 1000) == "threshold 5: switched to Global after step 650"


def test_demo_ledger_gives_no_verdict_on_synthetic_data():
    from genemask.report.chapters import claims

    ledger = pd.DataFrame({"id": ["A", "B"], "our evidence": ["+0.01 [-0.02, +0.03]", "—"],
                           "verdict": ["supported here", "contradicted here"], "reason": ["interval above zero", "Table 2"]})
    shown = claims.without_verdicts(ledger).set_index("id")
    assert shown.loc["A", "verdict"] == "not testable here" and shown.loc["A", "reason"] == claims.DEMO_REASON
    assert shown.loc["B", ["verdict", "reason"]].tolist() == ["contradicted here", "Table 2"]  # read in the paper: kept


def test_counts_and_seeds_read_as_sentences():
    from genemask.report.chapters import fewshot

    assert fewshot.count_text(pd.Series([1, 1])) == "1" and fewshot.count_text(pd.Series([3, 5])) == "3–5"
    seeds = pd.Series({"a": 3, "b": 1, "c": 3})
    assert fewshot.seeds_text(seeds, "pretraining seed") == "3 pretraining seeds for `a`, `c`; 1 pretraining seed for `b`"
    assert fewshot.seeds_text(pd.Series({"a": 2}), "seed") == "2 seeds each"
    assert fewshot.common_suffix(["genemask@1000:logo", "random@1000:logo", "random-init:logo"]) == "@1000:logo"
    assert fewshot.common_suffix(["a@100:tiny", "b@1000:logo"]) == ""


def test_profile_note_says_demo_data_are_generated(results):
    from genemask.report.chapters import profile_note

    assert profile_note("demo").startswith("**This book shows generated demo data**")
    assert "no page gives them a verdict" in profile_note("demo")
    assert profile_note("tiny").startswith("**This book shows profile `tiny`**: no pretraining runs yet")


def test_answers_and_claims_without_results_say_so(results):
    from genemask.report.chapters import claims, findings

    assert "no results the verdict plan can test" in findings.Chapter("empty").answers()[0]
    assert "generated demo data" in findings.Chapter("demo").answers()[0]  # no verdict words on synthetic data
    chapter = claims.Chapter("empty")
    assert chapter.contrasts() == []
    assert chapter.claims.set_index("id").loc["GM-1", "verdict"] == "not testable here"


def pretrain_cells(root, profile="tiny"):
    """Three pretraining cells: random and genemask at 20 steps, genemask at 10 steps."""
    import numpy as np

    rows = [("000000000000000a", "random", 20), ("000000000000000b", "genemask", 20), ("000000000000000c", "genemask", 10)]
    stage = root / profile / "pretrain"
    stage.mkdir(parents=True)
    pd.DataFrame({"key": [k for k, _, _ in rows], "strategy": [s for _, s, _ in rows], "steps": [n for _, _, n in rows],
                  "model": "tiny", "masking_options": "{}"}).to_csv(stage / "cells.csv", index=False)
    for key, _, steps in rows:
        (stage / key).mkdir()
        step = np.arange(1, steps + 1)
        pd.DataFrame({"step": step, "loss": 8.0 - step / 10, "masked_fraction": 0.15, "seconds": step * 0.5, "phase": "main",
                      "val_perplexity": np.where(step % 5 == 0, 400.0 - step, np.nan)}).to_csv(stage / key / "metrics.csv", index=False)


def test_pretrain_chapter_compares_the_longest_runs(results):
    from genemask.report.chapters import pretrain

    assert "No pretraining results for profile `empty` yet" in pretrain.Chapter("empty").scale()
    assert pretrain.Chapter("empty").curves() == [] and pretrain.Chapter("empty").table() is None
    pretrain_cells(results)
    chapter = pretrain.Chapter("tiny")
    assert "profile `tiny`: 3 run(s); model tiny, steps 10, 20" in chapter.scale()
    assert len(chapter.compared_runs()) == 2
    sentence, figure = chapter.curves()
    assert sentence.startswith("Curves of the 2 runs of 20 steps")
    assert {line.get_label() for line in figure.axes[0].lines} == set(chapter.compared_runs())
    figure.clf()
    assert len(chapter.table()) == 3


# --- the pages whose verdicts come from the frozen plan alone (issue 24)

#: The verdict vocabulary: the plan's words, the old rules' words and the marks that stood for them.
VERDICT_WORDS = re.compile(r"▲|▼|\b(better|worse|later|earlier|supported|equivalent|inconclusive)\b|no difference|no verdict",
                           re.IGNORECASE)
PLANNED_PAGES = ("transition", "fewshot", "paper_genemask", "paper_cmgems")


def shown_texts(obj) -> list[tuple[str | None, str]]:
    """Every piece of text a section returns, as (the table column it sits in, or None; the text):
    strings, and a frame's (or styled frame's) headers, index and cells; figures carry none."""
    if obj is None:
        return []
    if isinstance(obj, str):
        return [(None, obj)]
    if hasattr(obj, "data") and hasattr(obj, "to_html"):  # a pandas Styler
        obj = obj.data
    if isinstance(obj, pd.Series):
        obj = obj.to_frame()
    if isinstance(obj, pd.DataFrame):
        out = [(None, " | ".join(map(str, obj.columns))), (None, " | ".join(map(str, obj.index)))]
        return out + [(str(column), str(v)) for column in obj.columns for v in obj[column]]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in shown_texts(o)]
    return []


def test_shown_texts_walks_strings_frames_and_styled_frames():
    frame = pd.DataFrame({"verdict": ["better"], "x": [1]}, index=["q"])
    assert shown_texts(["a", frame.style, None]) == [(None, "a"), (None, "verdict | x"), (None, "q"), ("verdict", "better"),
                                                     ("x", "1")]


def page_sections(page: str) -> list[str]:
    """The chapter methods a book page calls (``chapter.<name>(``), in the page's order."""
    from genemask import paths

    return list(dict.fromkeys(re.findall(r"chapter\.(\w+)\(", (paths.BOOK / f"{page}.md").read_text())))


@pytest.mark.parametrize("page", PLANNED_PAGES)
def test_planned_pages_print_only_the_plans_verdicts(page, monkeypatch):
    """Every section a page shows, on the committed cpu results: a verdict word appears only in the
    *verdict* column of the plan's tables (the ``verdicts`` section), each is a word ``apply_plan``
    gave that page (as :func:`lenses.short_word` prints it), and no other text of the page — a
    bootstrap interval, a count of seeds, a caption — carries a verdict word or a ▲/▼ mark."""
    import importlib

    from genemask import paths
    from genemask.report import lenses, verdict

    if not (paths.results_dir("cpu") / "transition-16k").exists():
        pytest.skip("no committed cpu results")
    tables = {}
    apply_plan = verdict.apply_plan
    # the chapter and this test read the same table: computed once (the plan's tests take seconds a page)
    monkeypatch.setattr(verdict, "apply_plan", lambda p, profile=None: tables.setdefault((p, profile), apply_plan(p, profile)))
    sections = page_sections(page)
    assert "verdicts" in sections, f"book/{page}.md does not show the plan's verdicts"
    chapter = importlib.import_module(f"genemask.report.chapters.{page}").Chapter("cpu")
    legend = lenses.verdict_legend()
    shown_words = []
    for name in sections:
        for column, text in shown_texts(getattr(chapter, name)()):
            if name == "verdicts" and column == "verdict":
                shown_words.append(text)
            elif text != legend and not text.startswith("**Family `"):
                assert not VERDICT_WORDS.search(text), f"{page}.{name}: {text[:200]!r}"
    table = verdict.apply_plan(page, "cpu")
    table = table[table["word"] != verdict.ABSENT]
    if page in ("transition", "fewshot"):  # one metric a family: its own
        own = table.groupby("family", sort=False)["metric"].first()
        table = table[table["metric"] == table["family"].map(own)]
    assert shown_words and sorted(shown_words) == sorted(lenses.table_word(w)[0] for w in table["word"])


def test_plan_stages_are_the_evidence_stages_and_their_pretraining_runs():
    from genemask.report.chapters import page_stages, plan_stages

    fewshot = plan_stages("fewshot")
    assert {"finetune-transition-16k", "fewshot-transition-16k", "fewshot", "fewshot-seeds", "transition-16k",
            "pretrain"} <= set(fewshot)
    assert "gue" not in fewshot and len(fewshot) == len(set(fewshot))
    stages = page_stages()
    for page in PLANNED_PAGES:  # a page's freshness line counts the stages its verdicts read, each once
        assert set(plan_stages(page)) <= set(stages[page]) and len(stages[page]) == len(set(stages[page]))


def test_genemask_table_1_mcc_has_the_untrained_model_beside_both_runs():
    """How much either pretraining gives at all: the untrained LOGO-size model, fine-tuned the same way,
    sits in the MCC table beside ORI 10K and GeneMask 10K (the committed cpu results)."""
    from genemask import paths
    from genemask.report.chapters import paper_genemask

    if not (paths.results_dir("cpu") / "fewshot").exists():
        pytest.skip("no committed cpu results")
    out = paper_genemask.Chapter("cpu").table1_ours()
    at = next(i for i, o in enumerate(out) if isinstance(o, str) and o.startswith("**MCC beside it**"))
    assert "`random-init:logo` is the untrained model" in out[at]
    table = out[at + 1].data if hasattr(out[at + 1], "data") else out[at + 1]
    assert {"random-init:logo", "random@1000:logo", "genemask@1000:logo"} <= set(table.index.get_level_values("model"))
