"""The book's chapters as report functions: one module per page that computes everything the page
shows, section by section. Each section returns what the page displays (text as Markdown, frames,
figures: :func:`genemask.report.show`), so that a page holds its prose and one call per section, and
the analysis is tested as functions rather than only by "the page executes"."""
from __future__ import annotations

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
    from .. import book_profile, runs, stage_results

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
        first = next((d / name for d in cells["dir"] for name in ("fewshot_runs.csv", "gue_runs.csv") if (d / name).exists()), None)
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


def page_stages() -> dict[str, tuple[str, ...]]:
    """The results stages each Stages page's numbers come from (its freshness line counts their cells):
    the stage it shows and the upstream stages whose runs it names."""
    from .. import transition

    return {
        "pmi": ("pmi",),
        "masking": ("pmi", "masking"),
        "motifs": ("pmi", "motifs"),
        "gue": ("pretrain", "gue"),
        "fewshot": ("pretrain", "pretrain-seeds", *FEWSHOT_STAGES),
        "rate": ("pretrain", "fewshot", "fewshot-rate"),
        "transition": (*transition.PRETRAIN_STAGES, transition.PROBE_STAGE, transition.PILOT_STAGE,
                       *transition.FINETUNE_STAGES, transition.LONG_PROBE_STAGE, transition.LONG_FINETUNE_STAGE),
    }


def freshness(page: str | None = None, profile: str | None = None) -> str:
    """A page's freshness line (the whole book's for ``None``, the front page): how many of the result
    cells behind its numbers are fresh, verified or stale, linking the Provenance page."""
    from ..provenance import freshness_line

    return freshness_line(None if page is None else page_stages()[page], profile)
