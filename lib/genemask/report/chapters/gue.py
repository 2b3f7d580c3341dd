"""The GUE chapter: our rows beside the DNABERT-2 paper's quoted ones, in tables that fit the page."""
from __future__ import annotations

import pandas as pd

from .. import downstream, papers
from ..results import collect, stage_results
from .fewshot import common_suffix, count_text
from ... import store

QUOTED = " [Q]"


class Chapter:
    """The GUE chapter for one profile, its results read once."""

    def __init__(self, profile: str | None = None):
        self.profile, cells = stage_results("gue", profile)
        self.results, self.runs, self.skipped = (collect(cells, n) for n in (store.GUE_RESULTS, store.GUE_RUNS, store.GUE_SKIPPED))

    def scale(self) -> list:
        results, runs, profile = self.results, self.runs, self.profile
        if results is None:
            return [f"**Profile `{profile}` has no GUE results yet.** Run its grid (`make grid PROFILE={profile}`; "
                    "`make reproduce` for the demo) and rebuild the book to fill this chapter. The quoted rows "
                    "of the DNABERT-2 paper are shown below regardless."]
        budget = runs.groupby("task").agg(steps=("steps", "max"), seeds=("seed", "nunique"), n_train=("n_train", "max"),
                                          n_test=("n_test", "max"))
        effort = (f"{count_text(budget.steps)} optimizer steps per run" if budget.steps.max() > 0 else
                  f"up to {budget.n_train.max():,} training and {budget.n_test.max():,} test rows per task")
        seeds = count_text(budget.seeds)
        out = [f"**Scale of these results** — profile `{profile}`: {results.model.nunique()} model(s), {results.task.nunique()} "
               f"task(s), {seeds} seed{'s' if seeds != '1' else ''} per task, {effort}. "
               "The quoted rows are 120K-step (and larger) models at DNABERT-2's full budget."]
        if note := downstream.protocol_note(runs):
            out.append(note)
        return out

    def tables(self) -> list:
        """Models × tasks, one table per GUE task group (promoters, TF binding, mouse, ...), our rows then the
        quoted ones marked [Q]; the models' shared budget suffix said once."""
        if self.results is None:
            table = downstream.published_gue().round(2)
            table.index = [m + QUOTED for m in table.index]
        else:
            table = downstream.gue_table(self.results).round(1)
            table.index = [m.replace(downstream.QUOTED_SUFFIX, QUOTED) for m in table.index]
        suffix = common_suffix([m for m in table.index if not m.endswith(QUOTED)])
        if suffix:
            table.index = [m.replace(suffix, "") for m in table.index]
        table.index.name = "model"
        out = [f"Rows ending in *{QUOTED.strip()}* are quoted from the DNABERT-2 paper."
               + (f" Every one of our pretrained models ran `{suffix}` (steps:size)." if suffix else "")]
        groups = dict.fromkeys(task.split("/")[0] for task in table.columns)
        for group in groups:
            part = table[[c for c in table.columns if c.split("/")[0] == group]]
            part = part.loc[part.notna().any(axis=1)]
            part.columns = [c.split("/", 1)[-1] for c in part.columns]
            part.columns.name = f"{group}/"
            out.append(papers.compact(part, precision=1, wrap_headers=True))
        return out

    def by_species(self) -> list:
        """Mean MCC × 100 over the human and the non-human tasks each model ran, with the quoted DNABERT
        (6-mer) and DNABERT-2 rows over the same tasks."""
        from ... import tasks

        if self.results is None:
            return []
        species = {name: t.species for name, t in tasks.GUE.items()}
        table = downstream.gue_table(self.results)
        ran = [c for c in table.columns if table.loc[~table.index.str.endswith(downstream.QUOTED_SUFFIX), c].notna().any()]
        groups = {"human": [c for c in ran if species.get(c) == "human"],
                  "non-human": [c for c in ran if species.get(c) in ("yeast", "mouse", "virus")]}
        summary = pd.DataFrame({f"{g} ({len(cols)} tasks)": table[cols].mean(axis=1) for g, cols in groups.items() if cols})
        if summary.empty:
            return [f"Profile `{self.profile}` ran no GUE task (only demo tasks): nothing to group by species."]
        keep = [m for m in summary.index if not m.endswith(downstream.QUOTED_SUFFIX)] + [
            m + downstream.QUOTED_SUFFIX for m in ("DNABERT (6-mer)", "DNABERT-2") if m + downstream.QUOTED_SUFFIX in summary.index]
        shown = summary.loc[keep].round(1)
        shown.index = [m.replace(downstream.QUOTED_SUFFIX, QUOTED) for m in shown.index]
        shown.index.name = "model"
        return [shown]

    def data(self) -> list:
        """Rows each task trained, validated and tested on, and the overlapping rows removed."""
        if self.runs is None:
            return []
        table = self.runs.groupby("task").agg(train=("n_train", "first"), dev=("n_dev", "first"), test=("n_test", "first"),
                                              **{"dev rows removed": ("dev_overlap_removed", "max"),
                                                 "test rows removed": ("test_overlap_removed", "max")},
                                              substitute=("substitute", "first")).fillna("")
        return [papers.compact(table, wrap=True)]
