"""The verdict plan (frozen before the 10-seed campaign lands) and the verdict function whose
false-positive rate and power are checked here by simulation."""
from __future__ import annotations

import copy

import pytest

from genemask.report import plan as plan_module


def test_plan_loads_and_declares_every_page():
    plan = plan_module.load_plan()
    assert set(plan.pages) == {"findings", "claims", "transition", "fewshot", "paper_genemask", "paper_cmgems", "bugs"}
    assert plan.alpha == 0.05 and plan.power == 0.80 and plan.min_pairs == 3 and plan.min_runs == 2
    questions = {c.id for c in plan.families["findings-questions"].contrasts}
    assert {"gm-vs-random", "npmi-content", "curriculum-vs-genemask", "curriculum-vs-global", "curriculum-vs-reverse"} <= questions
    reverse = next(c for c in plan.families["findings-questions"].contrasts if c.id == "curriculum-vs-reverse")
    assert reverse.status == "not yet run"
    assert plan.evidence["finetune-16k"].role == "primary"


def test_plan_margins_are_the_papers_published_gaps():
    """Every margin that names a paper gap equals that gap recomputed from values.csv."""
    plan = plan_module.load_plan()
    checked = 0
    for family in plan.families.values():
        for contrast in family.contrasts:
            if contrast.paper_gap:
                assert contrast.margin.value == pytest.approx(abs(plan_module.paper_gap(contrast.paper_gap)), abs=5e-5), contrast.id
                checked += 1
    assert checked >= 8


def test_plan_threshold_is_the_context_free_loss_minus_the_margin():
    plan = plan_module.load_plan()
    t = plan.transition
    assert plan.absolute_threshold == pytest.approx(t["context_free_loss"] - t["margin"])
    assert plan.absolute_threshold < t["context_free_loss"] < t["unigram_loss"]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["test"].update(alpha=1.5), "test.alpha=1.5"),
    (lambda d: d["test"].update(min_pairs=2), "min_pairs=2"),
    (lambda d: d["transition"].update(absolute_threshold=6.9), "absolute_threshold=6.9"),
    (lambda d: d["pages"]["findings"]["families"][0].update(evidence=["nowhere"]), "'nowhere' is not declared"),
    (lambda d: d["pages"]["findings"]["families"][0]["contrasts"][0]["a"].update(seed=3), "unknown identity field"),
    (lambda d: d["pages"]["findings"]["families"][0]["contrasts"][0].update(margin="default_steps"), "not the default margin"),
    (lambda d: d["pages"]["claims"]["families"][0]["contrasts"][0].update(margin="default_mcc"), "an accuracy claim"),
])
def test_plan_refuses_a_bad_entry_naming_it(edit, message):
    data = copy.deepcopy(plan_module.load_plan().raw)
    edit(data)
    with pytest.raises(plan_module.PlanError, match=message.replace("(", r"\(").replace(".", r"\.")):
        plan_module.parse(data)
