"""The book's chapters as report functions: one module per page that computes everything the page
shows, section by section. Each section returns what the page displays (text as Markdown, frames,
figures: :func:`genemask.report.show`), so that a page holds its prose and one call per section, and
the analysis is tested as functions rather than only by "the page executes"."""
from __future__ import annotations

import json
import os
import sys

from ... import store

#: Profiles whose data the package generates: their books check that every stage runs, and give no
#: verdict on the papers' claims.
SYNTHETIC_PROFILES = ("demo",)
#: The few-shot stages of the LOGO runs the verdicts compare.
FEWSHOT_STAGES = ("fewshot", "fewshot-seeds")


def synthetic(profile: str) -> bool:
    return profile in SYNTHETIC_PROFILES


def profile_note(profile: str | None = None) -> str:
    """What this book shows, for its front page and the ledger: the profile, whether its data are
    generated, and each model size's pretraining runs (steps, runs, pretraining seeds per method) and
    downstream protocols, read from the results rather than described once and left to age."""
    import pandas as pd

    from ... import paths
    from .. import runs
    from ..results import book_profile, stage_results

    profile = profile or book_profile()
    pretraining = runs.pretraining_runs(profile)
    sizes = []
    for size, part in pretraining.groupby("pretrain_model", sort=False):
        steps = sorted(part.pretrain_steps.unique())
        seeds = part.groupby("method").pretrain_seed.nunique()
        sizes.append(f"`{size}` size, {len(part)} runs of {steps[0]:,}" + (f"–{steps[-1]:,}" if len(steps) > 1 else "")
                     + f" steps, {seeds.min()}" + (f"–{seeds.max()}" if seeds.max() > seeds.min() else "")
                     + f" pretraining seed{'s' if seeds.max() > 1 else ''} per method")
    protocols = set()
    for stage in sorted(p.parent.name for p in paths.results_dir(profile).glob("*/cells.csv")):
        cells = stage_results(stage, profile)[1]
        first = next((d / name for d in cells["dir"] for name in (store.FEWSHOT_RUNS, store.GUE_RUNS) if (d / name).exists()), None)
        if first is not None:  # one run table per stage: a stage runs one protocol
            frame = pd.read_csv(first)
            protocols |= set(frame["protocol"].dropna()) if "protocol" in frame else {"finetune"}
    named = {"probe": "a linear probe on the frozen encoder", "finetune": "fine-tuning"}
    runs_text = "; ".join(sizes) if sizes else "no pretraining runs yet"
    evaluation = " and ".join(named.get(p, p) for p in sorted(protocols)) or "no downstream runs yet"
    if synthetic(profile):
        return (f"**This book shows generated demo data** (profile `{profile}`): a synthetic genome and synthetic tasks that "
                f"the package makes, {runs_text}, evaluated by {evaluation}. It checks that every stage runs end to end; "
                "its numbers say nothing about the papers' claims, and no page gives them a verdict.")
    return (f"**This book shows profile `{profile}`**: {runs_text}; evaluated by {evaluation}. Each chapter states the "
            "scale of the runs behind its numbers.")


def plan_stages(page: str) -> tuple[str, ...]:
    """The results stages a page's planned verdicts (:func:`plan_verdicts`) read: every stage of the
    evidence its families name in the frozen plan, and the pretraining stages whose runs they name
    (each evidence's scale reads its runs' summaries and logs)."""
    from ..plan import load_plan

    plan = load_plan()
    names = dict.fromkeys(e for family in plan.page_families(page) for e in family.evidence)
    downstream = [s for name in names for s in plan.evidence[name].stages]
    pretraining = [s for e in plan.evidence.values() if e.name.startswith("curves") for s in e.stages]
    return tuple(dict.fromkeys([*downstream, *pretraining, "pretrain", "pretrain-seeds"]))


def plan_verdicts(page: str, profile: str | None = None, every_metric: bool = False, lead: str = "") -> list:
    """A page's verdicts, from the frozen plan alone (:func:`genemask.report.verdict.apply_plan` of
    ``page``): each declared family, Holm across it, one compact table per evidence under its scale
    (:func:`genemask.report.lenses.page_verdicts`). ``lead``: a line shown first. Generated demo data
    and a profile without results say so instead."""
    from .. import lenses, verdict
    from ..results import book_profile

    profile = profile or book_profile()
    if synthetic(profile):
        return [f"Profile `{profile}` is generated demo data: the plan's contrasts get no verdict from it (the `cpu` book "
                "gives them)."]
    table = verdict.apply_plan(page, profile)
    if table.empty:
        return [f"Profile `{profile}` has no results the verdict plan can test for this page yet."]
    scales = {name: lenses.evidence_scale(name, profile) for name in table["evidence"].unique()}
    return [*([lead] if lead else []), *lenses.page_verdicts(page, table, scales, every_metric)]


def page_stages() -> dict[str, tuple[str, ...]]:
    """The results stages each results page's numbers come from (its freshness line counts their
    cells): the stages whose result files it reads and the upstream stages whose runs it names. The
    book tests trace each page's reads (:data:`TRACE_READS`) and fail on a stage read but not listed."""
    from .. import transition

    long = (transition.LONG_STAGE, transition.LONG_PROBE_STAGE, transition.LONG_FINETUNE_STAGE)
    short = (transition.STAGE, transition.PROBE_STAGE, *transition.FINETUNE_STAGES)
    logo = ("pretrain", "pretrain-seeds", *FEWSHOT_STAGES)
    stages = {
        "pmi": ("pmi",),
        "masking": ("pmi", "masking"),
        "motifs": ("pmi", "motifs"),
        "pretrain": ("pretrain",),
        "gue": ("pretrain", "gue"),
        "fewshot": (*logo, *plan_stages("fewshot")),
        "rate": ("pretrain", "fewshot", "fewshot-rate"),
        "transition": (*transition.PRETRAIN_STAGES, transition.PROBE_STAGE, transition.PILOT_STAGE,
                       *transition.FINETUNE_STAGES, transition.LONG_PROBE_STAGE, transition.LONG_FINETUNE_STAGE,
                       *logo, "fewshot-rate", "gue", *plan_stages("transition")),
        "findings": ("pmi", "masking", *long, *short, *logo, "fewshot-rate", "gue", *plan_stages("findings")),
        "claims": ("pmi", "motifs", *long, *short, transition.PILOT_STAGE, *logo, "fewshot-rate", "gue",
                   *plan_stages("claims")),
        "bugs": ("pmi", "masking", *long, transition.FINETUNE_STAGE, transition.PROBE_STAGE, *logo, *plan_stages("bugs")),
        "paper_genemask": ("pmi", "motifs", "pretrain", *FEWSHOT_STAGES, "fewshot-rate", "gue", *plan_stages("paper_genemask")),
        "paper_cmgems": ("motifs", "pretrain", *FEWSHOT_STAGES, "fewshot-rate", "gue", *plan_stages("paper_cmgems")),
    }
    return {page: tuple(dict.fromkeys(names)) for page, names in stages.items()}  # each stage once


#: Set to a folder (by the book tests), each page's kernel writes there which results stages it read
#: and which page's freshness line it showed: ``<pid>.json``. A page reads its results through many
#: report functions; tracing the files it opens is what keeps its freshness line to the stages behind
#: its numbers, whichever function reads them.
TRACE_READS = "GENEMASK_TRACE_READS"
_trace: dict = {"page": None, "stages": set(), "busy": False}


def _trace_reads(folder: str) -> None:
    """Record the results stages this process reads (any file but a stage's index and provenance
    records, which the freshness line itself reads) into ``folder/<pid>.json``."""
    from ... import paths

    root = paths.results_dir("x").parent.resolve()
    target = os.path.join(folder, f"{os.getpid()}.json")

    def save() -> None:
        _trace["busy"] = True
        try:
            with open(target, "w") as out:
                json.dump({"page": _trace["page"], "stages": sorted(_trace["stages"])}, out)
        finally:
            _trace["busy"] = False

    def hook(event: str, args: tuple) -> None:
        if event != "open" or _trace["busy"] or not isinstance(args[0], (str, os.PathLike)):
            return
        path = os.path.abspath(os.fspath(args[0]))
        if not path.startswith(str(root) + os.sep):
            return
        parts = os.path.relpath(path, root).split(os.sep)
        if len(parts) >= 3 and parts[-1] not in (store.CELLS, store.RECORD) and parts[1] not in _trace["stages"]:
            _trace["stages"].add(parts[1])
            save()

    _trace["save"] = save
    sys.addaudithook(hook)


if os.environ.get(TRACE_READS):
    _trace_reads(os.environ[TRACE_READS])


def freshness(page: str | None = None, profile: str | None = None) -> str:
    """A page's freshness line (the whole book's for ``None``, the front page): how many of the result
    cells behind its numbers are fresh, verified or stale, linking the Provenance page."""
    from ..provenance import freshness_line

    stages = None if page is None else page_stages()[page]
    if "save" not in _trace:
        return freshness_line(stages, profile)
    _trace["page"] = page or "index"
    _trace["save"]()
    _trace["busy"] = True  # the line's own reads (every stage's records) are not the page's numbers
    try:
        return freshness_line(stages, profile)
    finally:
        _trace["busy"] = False
