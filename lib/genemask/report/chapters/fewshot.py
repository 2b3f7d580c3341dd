"""The few-shot chapter: every checkpoint's few-shot scores over all its pretraining seeds, in tables
and a figure that fit the page."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import downstream, papers, runs
from ..results import collect, stage_results
from . import FEWSHOT_STAGES
from ... import store


def seeds_text(seeds: pd.Series, what: str) -> str:
    """``3 pretraining seeds for a, b; 1 for c`` from a count per name (one count: ``3 pretraining seeds each``)."""
    if seeds.nunique() == 1:
        n = int(seeds.iloc[0])
        return f"{n} {what}{'s' if n != 1 else ''} each"
    groups = seeds.groupby(seeds).groups
    return "; ".join(f"{n} {what}{'s' if n != 1 else ''} for {', '.join(f'`{m}`' for m in sorted(groups[n]))}"
                     for n in sorted(groups, reverse=True))


def count_text(values: pd.Series) -> str:
    """``5`` when every group has 5, ``3–5`` otherwise (never ``5–5``)."""
    low, high = int(values.min()), int(values.max())
    return f"{low}" if low == high else f"{low}–{high}"


def common_suffix(labels) -> str:
    """The budget suffix every pretrained label shares (``@1000:logo``), '' when they differ."""
    suffixes = {label[label.index("@"):] for label in labels if "@" in label}
    return suffixes.pop() if len(suffixes) == 1 else ""


class Chapter:
    """The few-shot chapter for one profile: the LOGO checkpoints' results over every pretraining seed."""

    def __init__(self, profile: str | None = None):
        self.profile = profile = stage_results("fewshot", profile)[0]
        self.results = runs.downstream(FEWSHOT_STAGES, store.FEWSHOT_RESULTS, profile)
        self.runs = runs.downstream(FEWSHOT_STAGES, store.FEWSHOT_RUNS, profile)
        skipped = [frame for stage in FEWSHOT_STAGES
                   if (frame := collect(stage_results(stage, profile)[1], "fewshot_skipped.csv")) is not None]
        self.skipped = pd.concat(skipped, ignore_index=True) if skipped else None
        if self.results is not None:
            self.suffix = common_suffix(self.results["method"].unique())
            shown = self.results.assign(model=self.results["method"].str.replace(self.suffix, "", regex=False)) if self.suffix \
                else self.results
            self.summary = downstream.summarize(shown, ["model", "dataset", "shot"])

    def scale(self) -> list:
        results, profile = self.results, self.profile
        if results is None:
            return [f"**Profile `{profile}` has no few-shot results yet.** Run its grid (`make grid PROFILE={profile}`; "
                    "`make reproduce` for the demo) and rebuild the book to fill this chapter."]
        downstream_seeds = results.groupby(["method", "pretrain_seed", "dataset", "shot"])["seed"].nunique()
        pretrain_seeds = results.groupby("method")["pretrain_seed"].nunique()
        out = [f"**Scale of these results** — profile `{profile}`: {results.method.nunique()} models, "
               f"{results.dataset.nunique()} datasets ({', '.join(sorted(results.dataset.unique()))}), shots "
               f"{', '.join(map(str, sorted(results.shot.unique())))} per class, {count_text(downstream_seeds)} downstream "
               f"seeds per checkpoint and cell, and every pretraining seed of each model: {seeds_text(pretrain_seeds, 'pretraining seed')}"
               f" ({len(self.runs):,} runs)." + (f" Every pretrained model ran `{self.suffix}` (steps:size); the tables "
                                                f"leave it out." if self.suffix else "")
               + " The papers used 10 runs per cell and DNABERT-size models pretrained for 10K steps."]
        if note := downstream.protocol_note(self.runs):
            out.append(note)
        return out

    def verdicts(self) -> list:
        """The frozen plan's family for this page (each strategy against random masking), on every evidence
        it names, Holm across it (:func:`plan_verdicts`); the tables below describe, this decides."""
        from . import plan_verdicts

        return plan_verdicts("fewshot", self.profile)

    def mcc_tables(self) -> list:
        """One table per shot count: models × datasets, ``mean ± sd`` over every run (pretraining × downstream seeds)."""
        if self.results is None:
            return []
        table = downstream.fewshot_table(self.summary, "mcc")
        out = []
        for shot in sorted({s for _, s in table.columns}):
            part = table.xs(shot, axis=1, level="shot")
            part.columns.name = None
            out += [f"**{shot} shots per class**", papers.compact(part)]  # 80 % type, each cell on one line
        return out

    def figure(self, metric: str = "mcc"):
        """MCC against shots, one panel per dataset on a grid that fits the content column; each panel's
        axis spans its data, and one legend sits in the spare panel."""
        import matplotlib.pyplot as plt

        if self.results is None:
            return None
        part = self.summary[self.summary.metric == metric]
        datasets = list(dict.fromkeys(part["dataset"]))
        columns = min(3, len(datasets))
        rows = -(-(len(datasets) + 1) // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(7.4, 2.3 * rows + 0.3), squeeze=False)
        axes = axes.ravel()
        for ax, dataset in zip(axes, datasets):
            for model, group in part[part.dataset == dataset].groupby("model", sort=True):
                group = group.sort_values("shot")
                line, = ax.plot(group["shot"], group["mean"], marker="o", ms=3, lw=1.2, label=model)
                ok = np.isfinite(group["ci95_low"])
                ax.fill_between(group["shot"][ok], group["ci95_low"][ok], group["ci95_high"][ok], alpha=0.15, color=line.get_color())
            ax.set_xscale("log")
            ax.set_xticks(sorted(part[part.dataset == dataset]["shot"].unique()))
            ax.get_xaxis().set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
            ax.minorticks_off()
            ax.set_title(dataset, fontsize=9)
            ax.tick_params(labelsize=8)
            ax.set_ylabel("MCC" if metric == "mcc" else metric, fontsize=8)
        handles, labels = axes[0].get_legend_handles_labels()
        for ax in axes[len(datasets):]:
            ax.axis("off")
        axes[len(datasets)].legend(handles, labels, loc="center", fontsize=7, frameon=False, title="model", title_fontsize=8)
        fig.supxlabel("shots per class (log scale)", fontsize=9)
        fig.tight_layout()
        return fig

    def every_metric(self) -> list:
        if self.results is None:
            return []
        wide = self.summary.pivot_table(index=["dataset", "shot", "model"], columns="metric", values="mean").round(3)
        wide.columns.name = None
        return [wide]

    def provenance(self) -> list:
        if self.runs is None:
            return []
        provenance = self.runs.groupby(["dataset", "shot"]).agg(
            train_file=("train_file", "first"), train_sampling=("train_sampling", "first"), test_file=("test_file", "first"),
            test_rows=("n_test", "first"), test_rows_removed_as_overlap=("test_overlap_removed", "max"))
        out = [papers.compact(provenance.rename(columns=lambda c: c.replace("_", " ")), wrap=True)]
        if self.skipped is not None:
            out += ["Skipped (the shared data lacks these shots):", self.skipped.drop_duplicates(["dataset", "shot"])]
        return out

