"""The claims ledger: each claim of the two papers (``genemask/published/claims.yaml``), the paper's
evidence, ours at our scale, and a verdict from a fixed vocabulary, computed by a named check from
results/ and the published values (or stated in the YAML with its reason when nothing here can test it).

A directional claim ("A beats B") is judged on its best evidence first (issue 24): the frozen plan's
contrast for it (:func:`genemask.report.verdict.apply_plan`, page ``claims``) on the first evidence that
holds both methods — the 16K tiny end points fine-tuned with the papers' protocol, then the same end
points by the linear probe, then the LOGO 1K probe — with the others shown as second lenses
(:mod:`genemask.report.lenses`). The plan's word becomes the ledger's (:func:`claim_verdict`):
*better/worse* on the claimed side → supported / contradicted here; *equivalent within ±m* (m the
paper's gap) → not reproduced at our scale; *inconclusive* → inconclusive at our scale (the paper's
gap cannot be ruled out); no verdict (one pretraining run, too few seeds) → not testable here. The
two-level bootstrap is never the verdict.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Callable

import numpy as np
import pandas as pd

from .. import published
from . import papers
from . import lenses

VERDICTS = ("supported here", "not reproduced at our scale", "inconclusive at our scale", "contradicted here",
            "not testable here")
FINDINGS = ("checked in the published values", "read in the paper or released code")


@dataclass
class Evidence:
    ours: str
    verdict: str
    reason: str


@dataclass
class Context:
    """What the checks read: our tidy few-shot results (with the masking-rate runs), GUE scores
    (``downstream.gue_scores``), pretraining metrics per run name, k-mer rankings by label (the
    authors' under ``Data-A``), the motif enrichment summary of our ranking, and our pretraining
    seeds per strategy."""

    fewshot: pd.DataFrame | None = None
    gue: pd.DataFrame | None = None
    metrics: dict[str, pd.DataFrame] = field(default_factory=dict)
    rankings: dict[str, pd.DataFrame] = field(default_factory=dict)
    enrichment: pd.DataFrame | None = None
    pretrain_seeds: dict[str, int] = field(default_factory=dict)
    #: :func:`verdict.apply_plan` of the ``claims`` page, the scale of each evidence by name
    #: (:func:`lenses.evidence_scale`), and the transition steps under both rules
    #: (:func:`transition.steps_by_rule` of the 16K curves).
    plan: pd.DataFrame | None = None
    scales: dict[str, str] = field(default_factory=dict)
    steps_by_rule: pd.DataFrame | None = None


CHECKS: dict[str, Callable[[Context], Evidence]] = {}


def check(function: Callable[[Context], Evidence]) -> Callable[[Context], Evidence]:
    CHECKS[function.__name__] = function
    return function


@lru_cache(maxsize=1)
def _entries() -> dict:
    import yaml

    with resources.as_file(resources.files(published) / "claims.yaml") as path:
        data = yaml.safe_load(path.read_text())
    for kind, vocabulary, key in (("claims", VERDICTS, "verdict"), ("findings", FINDINGS, "status")):
        for entry in data[kind]:
            if "check" in entry:
                if entry["check"] not in CHECKS:
                    raise ValueError(f"claims.yaml {entry['id']}: check {entry['check']!r} is not in report.ledger.CHECKS")
            elif entry.get(key) not in vocabulary or not entry.get("reason"):
                raise ValueError(f"claims.yaml {entry['id']}: without a check it needs {key} (one of {vocabulary}) and a reason")
    return data


def _needs(value, what: str) -> Evidence | None:
    if value is None or (hasattr(value, "__len__") and not len(value)):
        return Evidence("—", "not testable here", f"this profile has no {what}")
    return None


def curriculum_run(ctx: Context, models) -> str | None:
    """Our CM-GEMS run that stands for the curriculum: the default one if its pretraining switched to
    Global, else a variant that did (a scaled switch threshold), else the default."""
    from .pretrain import switch_step

    budget = papers.main_runs(models).get("cmgems")
    if budget is None:
        return None
    steps = papers.identity(budget)["steps"]
    candidates = sorted((m for m in set(models) if papers.identity(m)["strategy"] == "cmgems" and papers.identity(m)["steps"] == steps),
                        key=lambda m: (m != budget, m))
    switched = [m for m in candidates if m in ctx.metrics and switch_step(ctx.metrics[m]) is not None]
    return switched[0] if switched else budget


def _runs(ctx: Context, models) -> dict[str, str]:
    runs = papers.main_runs(models)
    curriculum = curriculum_run(ctx, models)
    if curriculum:
        runs["cmgems"] = curriculum
    return runs


def claim_verdict(row: pd.Series | dict | None, claimed: int = 1) -> tuple[str, str]:
    """The ledger's verdict and reason from the plan's word on a claim's best evidence; ``claimed``:
    the sign the claim predicts for ``a − b`` (+1: a ahead; for a transition step, a later)."""
    if row is None:
        return "not testable here", "no evidence of the plan holds both methods"
    word = str(row["word"])
    if lenses.no_verdict(word) or not lenses.tested(row):
        return "not testable here", word
    if word.startswith("equivalent"):
        return "not reproduced at our scale", f"{word} (TOST p {row['tost_p']:.2g}): the paper's gap is ruled out at our scale"
    if word == "inconclusive":
        return ("inconclusive at our scale", f"neither a difference (Holm p {row['p_holm']:.2g}) nor equivalence within "
                f"±{row['margin']:,.4g}: the paper's gap cannot be ruled out; the smallest difference these seeds detect "
                f"(80 % power) is {row['mde']:,.3g}")
    sign = 1 if word in ("better", "later") else -1
    side = "the claimed side" if sign == claimed else "the other side"
    return ("supported here" if sign == claimed else "contradicted here",
            f"{word} at Holm p {row['p_holm']:.2g}: on {side} of zero")


def _lens(ctx: Context, row: pd.Series, extra: pd.Series | None = None) -> str:
    scale = ctx.scales.get(row["evidence"])
    unit = {"accuracy": "accuracy", "mcc": "MCC", "transition_step": "steps"}[row["metric"]]
    digits = 0 if row["metric"] == "transition_step" else 3
    text = f"{unit} {lenses.line(row, digits)}"
    if extra is not None and lenses.tested(extra):
        text += f"; MCC {lenses.line(extra)}"
    return f"*{lenses.lens_name(row['evidence'])}*" + (f" ({scale})" if scale else "") + f", {row['a']} − {row['b']}: {text}"


def _second(ctx: Context, rows: pd.DataFrame, digits: int = 3) -> str:
    parts = [f"{lenses.lens_name(r.evidence)}" + (f" ({lenses.seeds_text(r._asdict())})" if lenses.tested(r._asdict()) else "")
             + f": {lenses.cell(r._asdict(), digits)} {lenses.short_word(r.word)}" for r in rows.itertuples()]
    return ("Second lenses — " + "; ".join(parts) + ".") if parts else ""


def planned(ctx: Context, contrast_id: str, claimed: int = 1) -> tuple[Evidence, pd.Series | None]:
    """A directional claim's evidence and verdict from the plan's contrast ``contrast_id``: the verdict
    on its best evidence (metric: the family's, MCC beside where the family names it), the other
    evidence as second lenses with their scale, and the old bootstrap's word beside."""
    if ctx.plan is None or ctx.plan.empty:
        return Evidence("—", "not testable here", "no verdict plan results in this profile"), None
    rows = ctx.plan[ctx.plan["id"] == contrast_id]
    if rows.empty:
        return Evidence("—", "not testable here", f"the plan has no contrast {contrast_id}"), None
    metric = rows["metric"].iloc[0]  # the family's own metric comes first in apply_plan's rows
    first = lenses.primary(ctx.plan, contrast_id, metric)
    if first is None:
        return Evidence("—", "not testable here", "no evidence of the plan holds both methods"), None
    mcc = lenses.lenses(ctx.plan, contrast_id, "mcc") if metric != "mcc" else pd.DataFrame()
    extra = mcc[mcc["evidence"] == first["evidence"]].iloc[0] if len(mcc) and (mcc["evidence"] == first["evidence"]).any() else None
    verdict, reason = claim_verdict(first, claimed)
    others = lenses.lenses(ctx.plan, contrast_id, metric)
    others = others[others["evidence"] != first["evidence"]]
    text = _lens(ctx, first, extra) if lenses.tested(first) else (
        f"*{lenses.lens_name(first['evidence'])}*: {first['a']} − {first['b']}: {first['word']}")
    second = _second(ctx, others, 0 if metric == "transition_step" else 3)
    old = first.get("old_verdict")
    old_text = f" Old rule (same runs): {old}." if isinstance(old, str) else ""
    return Evidence(" ".join(t for t in (text + ".", second) if t) + old_text, verdict, reason), first


def _planned_claim(ctx: Context, contrast_id: str, claimed: int = 1) -> Evidence:
    return planned(ctx, contrast_id, claimed)[0]


#: How several contrasts of one claim (GM-2's shots) combine: the claim holds only where every part does.
_ORDER = ("not testable here", "contradicted here", "inconclusive at our scale", "not reproduced at our scale", "supported here")


def combine(verdicts: list[str]) -> str:
    """One verdict from a claim's parts: the first of not testable, contradicted, inconclusive, not
    reproduced, supported that any part has (a claim made at every shot holds only if each does)."""
    return next(v for v in _ORDER if v in verdicts)


@check
def fewshot_genemask_vs_random(ctx: Context) -> Evidence:
    return _planned_claim(ctx, "GM-1")


@check
def fewshot_cmgems_vs_genemask(ctx: Context) -> Evidence:
    return _planned_claim(ctx, "CM-4")


@check
def fewshot_global_vs_genemask(ctx: Context) -> Evidence:
    return _planned_claim(ctx, "CM-5")


@check
def fewshot_cmgems_vs_cmstep(ctx: Context) -> Evidence:
    return _planned_claim(ctx, "CM-6")


@check
def table2_logo_gain(ctx: Context) -> Evidence:
    """GM-2 at each shot the plan names, over pretraining seeds (never over downstream seeds alone)."""
    ids = sorted(i for i in (ctx.plan["id"].unique() if ctx.plan is not None and len(ctx.plan) else []) if i.startswith("GM-2@"))
    if not ids:
        return Evidence("—", "not testable here", "no verdict plan results in this profile")
    parts = [(i, *planned(ctx, i)) for i in ids]
    ours = " ".join(f"**{i.split('@')[1]} shots:** {e.ours}" for i, e, _ in parts)
    verdict = combine([e.verdict for _, e, _ in parts])
    reason = "; ".join(f"{i.split('@')[1]} shots: {e.verdict} ({e.reason})" for i, e, _ in parts)
    return Evidence(ours, verdict, reason + ". The interval is over pretraining seeds (each seed's mean over datasets and "
                    "downstream seeds), so it compares two methods, not two checkpoints")


@check
def budget_ratio(ctx: Context) -> Evidence:
    t1 = published.values("GeneMask", "T1", block="DNABERT")
    ratio = t1.loc[t1.model == "ORI 120K", "steps"].iloc[0] / t1.loc[t1.model == "GeneMaskBest", "steps"].iloc[0]
    return Evidence(f"published step counts: 120K / 10K = {ratio:.0f}×", "not testable here",
                    "a statement of budget (steps, not epochs); whether the short budget matches the long one is GM-4, "
                    "and we ran no 120K-step model")


@check
def gm_beats_120k_cells(ctx: Context) -> Evidence:
    t1 = published.values("GeneMask", "T1", block="DNABERT", metric="accuracy")
    t1 = t1[t1.dataset.isin(["prom-300", "cohn-enh"])]
    wide = t1.pivot_table(index=["dataset", "shots"], columns="model", values="value")
    better, ties = int((wide["GeneMaskBest"] > wide["ORI 120K"]).sum()), int((wide["GeneMaskBest"] == wide["ORI 120K"]).sum())
    ours = f"in the paper's Table 1: GeneMaskBest > ORI 120K in {better} of {len(wide)} cells, {ties} tie(s)"
    if better == len(wide):
        return Evidence(ours, "supported here", "every cell of the published table")
    return Evidence(ours, "contradicted here", "not every cell: the published table itself has a tie or a loss; "
                    "and GeneMaskBest is a per-cell choice among three models (M-1)")


@check
def gene_pmi_voc_count(ctx: Context) -> Evidence:
    t1 = published.values("GeneMask", "T1", block="DNABERT", metric="accuracy")
    wide = t1.pivot_table(index=["dataset", "shots"], columns="model", values="value")
    worse = int((wide["Gene-PMI-VOC"] < wide["ORI 10K"]).sum())
    ours = f"counted in the paper's Table 1: Gene-PMI-VOC < ORI 10K in {worse} of {len(wide)} accuracy cells"
    if worse == 12:
        return Evidence(ours, "supported here", "the count matches")
    return Evidence(ours, "contradicted here", "the paper's own table gives a different count")


def _rank_lists(ranking: pd.DataFrame) -> list[bool]:
    table = papers.motif_rank_table({"x": ranking})
    return [paper == got for paper, got in zip(table["paper"], table["x"])]


@check
def motif_ranks_exact(ctx: Context) -> Evidence:
    """GM-7 is a consistency check: the published ranks are (or are not) the authors' file's. That says
    how Table 5 was made, not that top-ranked tokens are motifs (GM-8 tests that)."""
    if "Data-A" not in ctx.rankings:
        return Evidence("—", "not testable here", "the authors' Data-A ranking is not under $GENEMASK_DATA")
    same = _rank_lists(ctx.rankings["Data-A"])
    ours_text = ""
    ours = [k for k in ctx.rankings if k != "Data-A"]
    if ours:
        own = _rank_lists(ctx.rankings[ours[0]])
        ours_text = f"; our ranking ({ours[0]}) reproduces {sum(own)} of {len(own)}"
    evidence = f"consistency check: the authors' Data-A file reproduces {sum(same)} of {len(same)} published rank lists exactly{ours_text}"
    if all(same):
        return Evidence(evidence, "not testable here", "the published ranks are the authors' file's (the table is consistent "
                        "with its source), which is no evidence that top-ranked tokens are conserved motifs: that is GM-8's test")
    return Evidence(evidence, "contradicted here", "a published rank differs from the authors' own file")


def enrichment_families(top: pd.DataFrame, alpha: float = 0.05) -> dict:
    """GM-8's datasets by kind: promoter sets (names with ``prom``: one kind of sequence, overlapping
    sets) and the others; per kind, the datasets whose top 6-mers are over-represented (Fisher p <
    ``alpha``, odds ratio > 1) and those enriched beyond GC and CpG content, with each dataset's p."""
    enriched = top[(top["fisher_p"] < alpha) & (top["fisher_odds_ratio"] > 1)]["dataset"].tolist()
    beyond = top[top["beyond_gc_cpg_p"] < alpha]["dataset"].tolist()
    promoters = [d for d in top["dataset"] if "prom" in d]
    others = [d for d in top["dataset"] if d not in promoters]
    return {"datasets": top["dataset"].tolist(), "enriched": enriched, "beyond": beyond, "promoters": promoters,
            "others": others, "beyond_p": top.set_index("dataset")["beyond_gc_cpg_p"].to_dict()}


@check
def motif_enrichment(ctx: Context) -> Evidence:
    missing = _needs(ctx.enrichment, "motif enrichment results")
    if missing:
        return missing
    top = ctx.enrichment[ctx.enrichment["top"] == ctx.enrichment["top"].min()]
    f = enrichment_families(top)
    kinds = [k for k, names in (("promoter", f["promoters"]), ("other", f["others"])) if names]
    held = [k for k, names in (("promoter", f["promoters"]), ("other", f["others"])) if set(names) & set(f["beyond"])]
    others = "; ".join(f"{d}: beyond GC and CpG p {f['beyond_p'][d]:.2g}" for d in f["others"])
    ours = (f"top-{int(top['top'].iloc[0])} 6-mers of {top['ranking'].iloc[0]} over-represented in the positive class "
            f"(Fisher p < 0.05) on {len(f['enriched'])} of {len(f['datasets'])} datasets — {len(f['promoters'])} promoter sets "
            f"(one kind of sequence, overlapping sets: {', '.join(f['promoters'])}) and {len(f['others'])} other"
            f"{'s' if len(f['others']) != 1 else ''} ({others}); beyond GC and CpG content on "
            f"{len(set(f['beyond']) & set(f['promoters']))} of the promoter sets and "
            f"{len(set(f['beyond']) & set(f['others']))} of the others")
    if len(held) == len(kinds) and len(kinds) > 1:
        return Evidence(ours, "supported here", "enriched beyond GC/CpG content in promoters and in the other kinds of sequence")
    if held == ["promoter"]:
        return Evidence(ours, "not reproduced at our scale", "the count of datasets overstates the evidence: beyond GC and CpG "
                        "content the enrichment holds in promoters only (one kind of sequence), not in the others")
    return Evidence(ours, "not reproduced at our scale", "not enriched beyond GC and CpG content")


def step_rules_text(by_rule: pd.DataFrame, strategies: tuple[str, str]) -> str:
    """Both transition rules in one sentence: each rule's mean step of ``strategies`` (t interval over
    seeds, runs crossed) and the ordering it gives (:func:`transition.ordering`)."""
    from .transition import ordering

    orders = ordering(by_rule)
    parts = []
    for rule, part in by_rule.groupby("rule", sort=False):
        part = part.set_index("strategy")
        steps = ", ".join(f"{s} {part.loc[s, 'step_mean']:,.0f} [{part.loc[s, 'step_ci95_low']:,.0f}, "
                          f"{part.loc[s, 'step_ci95_high']:,.0f}] ({part.loc[s, 'crossed']} of {part.loc[s, 'runs']} crossed)"
                          for s in strategies if s in part.index)
        parts.append(f"{rule} rule: {steps}; order {orders[rule]}")
    return "; ".join(parts)


@check
def perplexity_collapse(ctx: Context) -> Evidence:
    """GM-9, restated as the plan's testable question: the plateau is there, and GeneMask leaves it
    after random masking — judged on the transition steps over pretraining seeds (the plan's absolute
    threshold; the own-plateau rule beside)."""
    evidence, row = planned(ctx, "GM-9", claimed=1)
    if row is None:
        return evidence
    if ctx.steps_by_rule is not None and len(ctx.steps_by_rule):
        evidence.ours += f" Both rules on the 16K curves (mean step [95 % t interval over seeds]): {step_rules_text(ctx.steps_by_rule, ('genemask', 'random'))}."
    evidence.reason += ("; restated (issue 24, the frozen plan): the paper's Fig. 2 is one run per model, ours are "
                        "transition steps over pretraining seeds")
    return evidence


def _gue_pair(ctx: Context, model: str, baseline: str) -> tuple[pd.DataFrame, dict] | None:
    wide = ctx.gue.pivot(index="task", columns="model", values="score")
    if model not in wide or baseline not in wide:
        return None
    result = papers.paired_t(wide, model, [baseline])
    return wide, result.iloc[0].to_dict()


@check
def gue_cmgems_vs_genemask(ctx: Context) -> Evidence:
    """CM-3: one GUE run per method, so no verdict (the plan's ``claims-gue`` family says so from the
    runs); the paired t over tasks is shown as a description of two checkpoints."""
    evidence, row = planned(ctx, "CM-3", claimed=1)
    if ctx.gue is None or not len(ctx.gue):
        return evidence
    runs = _runs(ctx, ctx.gue["model"])
    if "cmgems" in runs and "genemask" in runs:
        _, stats = _gue_pair(ctx, runs["cmgems"], runs["genemask"])
        described = (f"{runs['cmgems']} − {runs['genemask']}: {stats['difference']:+.2f} MCC × 100 over {stats['tasks']} tasks "
                     f"(paired t over tasks p = {stats['p_value']:.3f}: tasks, not pretraining runs, are its replicates)")
        evidence.ours = described + ("" if evidence.ours == "—" else f". {evidence.ours}")
    return evidence


@check
def logo_share_of_sota(ctx: Context) -> Evidence:
    """CM-2: our CM-GEMS species means as a share of SoTA-Best over the same tasks
    (:func:`papers.share_of_sota`, the one definition the CM-GEMS chapter prints too); one pretraining
    run, so a description without a verdict."""
    missing = _needs(ctx.gue, "GUE results")
    if missing:
        return missing
    runs = _runs(ctx, ctx.gue["model"])
    if "cmgems" not in runs:
        return Evidence("—", "not testable here", "no CM-GEMS GUE run")
    ours = ctx.gue[ctx.gue.model == runs["cmgems"]].set_index("task")["score"]
    shares = papers.share_of_sota(ours)
    text = "; ".join(f"{g}: {100 * r.share:.1f} % of SoTA-Best over the {int(r.tasks)} tasks we ran (ours {r.ours:.1f}, "
                     f"SoTA-Best {r.sota_best:.1f} MCC × 100 on the same tasks)" for g, r in shares.iterrows())
    row = planned(ctx, "CM-3")[1]
    if row is not None and lenses.no_verdict(row["word"]):
        return Evidence(text, "not testable here", f"{row['word']}: one CM-GEMS GUE run is one checkpoint, not the method; "
                        "the share describes it (ours is pretrained for a small fraction of the 120K budget and probed, not fine-tuned)")
    if all(r.share >= 0.85 for _, r in shares.iterrows()):
        return Evidence(text, "supported here", "at or above 85 % on both species")
    return Evidence(text, "not reproduced at our scale", "below 85 % of the published 120K-step models; ours is pretrained "
                    "for a small fraction of their budget and scored by a linear probe, not fine-tuned")


@check
def cmgems_vs_sota_published(ctx: Context) -> Evidence:
    t2 = papers.published_gue_wide("T2")
    means = t2.mean()
    cm = means["DNABERT: CM-GEMS 10K"]
    beaten_by = [c.split(": ", 1)[1] for c in means.index if c.startswith("baseline") and means[c] > cm]
    ours = (f"27-task means in the paper's Table 2: CM-GEMS 10K {cm:.2f}; "
            + ", ".join(f"{c.split(': ', 1)[1]} {v:.2f}" for c, v in means.items() if c.startswith("baseline")))
    if beaten_by:
        return Evidence(ours, "contradicted here", f"{', '.join(beaten_by)} is ahead in the paper's own table (the claim holds "
                        "against DNABERT-2's k-mer ablation only); we ran no 120K-step model")
    return Evidence(ours, "supported here", "ahead of every quoted 120K row")


@check
def rate_doubling(ctx: Context) -> Evidence:
    evidence = _planned_claim(ctx, "CM-7", claimed=-1)
    evidence.reason += "; we double GeneMask's centre probability, the paper doubles random masking's 15 %"
    return evidence


@check
def genemask_best_is_max(ctx: Context) -> Evidence:
    table = papers.genemask_best_check()
    same = int((table["GeneMaskBest (T1)"] == table["max of T4"]).sum())
    chosen = table["chosen variant"].str.split(" / ").explode().value_counts()
    return Evidence(f"{same} of {len(table)} accuracy cells equal the maximum of the three variants; chosen: "
                    + ", ".join(f"{k} {v}" for k, v in chosen.items()), FINDINGS[0], "recomputed from Tables 1 and 4")


@check
def copied_baselines(ctx: Context) -> Evidence:
    from .downstream import published_gue

    t2 = papers.published_gue_wide("T2", "baseline")
    dnabert2 = published_gue()
    tasks = [t for t in t2.index if t in dnabert2.columns]
    same = int(np.isclose(t2.loc[tasks, "DNABERT 120K"], dnabert2.loc["DNABERT (6-mer)", tasks]).sum())
    headline = int(np.isclose(t2.loc[tasks, "DNABERT-2 120K (BPE)"], dnabert2.loc["DNABERT-2", tasks]).sum())
    return Evidence(f"DNABERT 120K column = DNABERT-2 paper's DNABERT (6-mer) row on {same} of {len(tasks)} tasks; "
                    f"its 'DNABert-2 120K (BPE)' column equals DNABERT-2's headline row on {headline} of {len(tasks)}",
                    FINDINGS[0], "compared with the DNABERT-2 rows transcribed in report.downstream")


@check
def reused_fewshot_rows(ctx: Context) -> Evidence:
    t4 = published.values("CM-GEMS", "T4")
    t4 = t4[t4.dataset.isin(papers.FOUR)]
    sources = {"DNABERT 120K": ("T1", "ORI 120K"), "DNABERT 10K": ("T1", "ORI 10K"), "GeneMask 10K": ("T4", "GeneMask")}
    same = total = 0
    for model, (table, row) in sources.items():
        ours = t4[t4.model == model].set_index(["dataset", "shots"])[["value", "sd"]]
        src = published.values("GeneMask", table, block="DNABERT", model=row, metric="accuracy").set_index(["dataset", "shots"])[["value", "sd"]]
        joined = ours.join(src, rsuffix="_gm", how="inner")
        same += int(((joined.value == joined.value_gm) & (joined.sd == joined.sd_gm)).sum())
        total += len(ours)
    return Evidence(f"{same} of {total} cells (mean and sd) identical to GeneMask Tables 1 and 4", FINDINGS[0],
                    "only the Sil-300 column and the Global, CM-Step and CM-GEMS rows are new")


@check
def table3_reproduces(ctx: Context) -> Evidence:
    t2 = papers.published_gue_wide("T2")
    test = papers.paired_t(t2, "DNABERT: CM-GEMS 10K", ["baseline: DNABERT 120K", "baseline: DNABERT-2 120K (k-mer)", "DNABERT: GeneMask 10K"])
    t3 = published.values("CM-GEMS", "T3", metric="p_value").set_index("model")["value"]
    pairs = [(r.model.split(": ", 1)[1], r.p_value) for r in test.itertuples() if np.isfinite(r.p_value)]
    text = "; ".join(f"{m}: p = {p:.3f} (printed {t3[m]:.3f})" for m, p in pairs)
    return Evidence(text, FINDINGS[0], "two-sided paired t-test over the 27 task scores of Table 2; sd with ddof = 0")


@check
def logo_parameters(ctx: Context) -> Evidence:
    from ..models import size_table

    count = float(size_table(("logo",)).iloc[0]["parameters (M)"])
    return Evidence(f"our LOGO configuration: {count:.1f} M parameters (masked-LM model, built from the released config)",
                    FINDINGS[0], "the paper's 15 M is three times that")


@check
def table1_copy_error(ctx: Context) -> Evidence:
    a = published.values("GeneMask", "T1", block="DNABERT", model="Gene-PMI-VOC", dataset="splice-40", shots=1000)
    b = published.values("GeneMask", "T1", block="LOGO", model="ORI 10K", dataset="splice-40", shots=1000)
    same = a.set_index("metric")[["value", "sd"]].equals(b.set_index("metric")[["value", "sd"]])
    return Evidence("identical (accuracy and AUC, mean and sd)" if same else "different", FINDINGS[0], "compared in values.csv")


def ledger(ctx: Context) -> pd.DataFrame:
    """One row per claim: id, paper, where, claim, paper's evidence, ours, verdict, reason."""
    rows = []
    for entry in _entries()["claims"]:
        if "check" in entry:
            evidence = CHECKS[entry["check"]](ctx)
        else:
            evidence = Evidence("—", entry["verdict"], entry["reason"])
        if evidence.verdict not in VERDICTS:
            raise ValueError(f"check {entry.get('check')} returned verdict {evidence.verdict!r}")
        rows.append({"id": entry["id"], "paper": entry["paper"], "where": entry["where"], "claim": entry["quote"],
                     "paper's evidence": entry["paper_evidence"], "our evidence": evidence.ours,
                     "verdict": evidence.verdict, "reason": evidence.reason})
    return pd.DataFrame(rows)


def findings(ctx: Context) -> pd.DataFrame:
    """One row per methodological finding: id, paper, finding, evidence, status, reason."""
    rows = []
    for entry in _entries()["findings"]:
        evidence = CHECKS[entry["check"]](ctx) if "check" in entry else Evidence("—", entry["status"], entry["reason"])
        rows.append({"id": entry["id"], "paper": entry["paper"], "finding": entry["finding"], "evidence": evidence.ours,
                     "status": evidence.verdict, "reason": evidence.reason})
    return pd.DataFrame(rows)


def finding(finding_id: str) -> str:
    """The text of one methodological finding or claim quote of claims.yaml, for a page to cite."""
    data = _entries()
    for entry in [*data["findings"], *data["claims"]]:
        if entry["id"] == finding_id:
            return entry.get("finding") or entry["quote"]
    raise KeyError(f"claims.yaml has no entry {finding_id!r}")


def verdict_counts(table: pd.DataFrame) -> pd.Series:
    """How many claims got each verdict, in the vocabulary's order (zeros included)."""
    return table["verdict"].value_counts().reindex(list(VERDICTS), fill_value=0)
