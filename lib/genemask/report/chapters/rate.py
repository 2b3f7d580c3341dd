"""The masking-rate chapter: GeneMask at its default and doubled centre probability (CM-GEMS Fig. 4)."""
from __future__ import annotations

import json

import pandas as pd

from .. import findings, papers, runs, transition
from ..results import book_profile, stage_results
from .. import pretrain as pretrain_report
from ... import store

DOUBLED = json.dumps({"centre_probability": 0.05})


def _interval(mean: float, low: float, high: float, signed: bool = False) -> str:
    """``mean ±half`` (half its 95 % interval) to 3 decimals, one line a cell."""
    return transition.interval(mean, low, high, 3, signed)


def _listed(steps) -> str:
    return ", ".join(map(str, steps))


class Chapter:
    """The masking-rate chapter for one profile, its results read once."""

    def __init__(self, profile: str | None = None):
        self.profile = profile = profile or book_profile()
        self.pretrain_cells = stage_results("pretrain", profile)[1]
        rate = runs.downstream("fewshot-rate", store.FEWSHOT_RESULTS, profile)
        main = runs.downstream("fewshot", store.FEWSHOT_RESULTS, profile)
        self.table = None
        if rate is not None:
            # The fewshot stage's single-rate GeneMask rows complete the largest budget, on the same datasets, shots and seeds.
            if main is not None:
                same = main.set_index(["dataset", "shot", "seed"]).index.isin(rate.set_index(["dataset", "shot", "seed"]).index)
                rate = pd.concat([rate, main[same & (main.pretrain_strategy == "genemask")]], ignore_index=True)
            self.table = findings.rate_effect(rate, "genemask", 0.05, "mcc")
        self.rate = rate

    def scale(self) -> str:
        rate, profile = self.rate, self.profile
        if rate is None:
            return (f"**Profile `{profile}` has no masking-rate results yet.** The `cpu` profile's `fewshot-rate` stage "
                    f"runs them (`make grid PROFILE=cpu`); rebuild the book afterwards.")
        return (f"**Scale** — profile `{profile}`: datasets {', '.join(sorted(rate.dataset.unique()))}; shots "
                f"{', '.join(map(str, sorted(rate.shot.unique())))} per class; {rate.seed.nunique()} seeds; "
                f"the evaluation budget of the *Few-shot classification* chapter.")

    def pretraining(self) -> list:
        if self.pretrain_cells is None:
            return []
        _, summaries = pretrain_report.load_cells(self.pretrain_cells)
        view = summaries[(summaries.pretrain_strategy == "genemask") & (summaries.pretrain_ranking != "Data-A")
                         & summaries.pretrain_masking_options.isin(["{}", DOUBLED])]
        out = []
        if not (view.pretrain_masking_options == DOUBLED).any():
            view = view.iloc[0:0]
            out.append(f"Profile `{self.profile}` has no doubled-rate pretraining run.")
        view = view.assign(rate=["doubled" if o == DOUBLED else "default" for o in view.pretrain_masking_options],
                           steps=view.pretrain_steps, **{"masked %": (100 * view.masked_fraction).round(1)})
        if len(view):
            out.append(view.pivot_table(index="steps", columns="rate", values=["masked %", "final_loss"]).round(3))
        return out

    def effect(self) -> list:
        table = self.table
        if table is None:
            return []
        if not len(table):
            return ["No budget has both rates yet."]
        import matplotlib.pyplot as plt
        import seaborn as sns

        shown = pd.DataFrame({
            "steps": table.steps,
            "default rate": [_interval(*r) for r in zip(table.default_mean, table.default_ci95_low, table.default_ci95_high)],
            "doubled rate": [_interval(*r) for r in zip(table.doubled_mean, table.doubled_ci95_low, table.doubled_ci95_high)],
            "doubled − default": [_interval(m, lo, hi, signed=True) for m, lo, hi in zip(table.mean_difference, table.ci95_low, table.ci95_high)],
            "won / lost": [f"{w} / {l}" for w, l in zip(table.wins, table.losses)],
            "pretraining runs": table.pretrain_seeds_a,
            "verdict": table.verdict,
        }).set_index("steps")
        long = pd.concat([table[["steps", f"{r}_mean", f"{r}_ci95_low", f"{r}_ci95_high"]].set_axis(
            ["steps", "mean", "low", "high"], axis=1).assign(rate=r) for r in ("default", "doubled")])
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for (rate_name, group), color in zip(long.groupby("rate"), sns.color_palette("tab10", 2)):
            ax.errorbar(group.steps, group["mean"], yerr=[group["mean"] - group.low, group.high - group["mean"]],
                        marker="o", capsize=3, label=f"{rate_name} rate", color=color)
        ax.set(xscale="log", xlabel="pretraining steps", ylabel="few-shot MCC (mean, 95 % CI)", xticks=list(table.steps))
        ax.set_xticklabels([str(s) for s in table.steps])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.legend()
        better = table[table.ci95_low > 0].steps.tolist()
        worse = table[table.ci95_high < 0].steps.tolist()
        reading = (f"the doubled-rate checkpoint scored higher at {_listed(better)} steps" if better else
                   "the doubled-rate checkpoint scored higher at no budget") + (
            f" and lower at {_listed(worse)}" if worse else "") + (
            "; elsewhere the interval of the difference includes zero" if len(better) + len(worse) < len(table) else "") + (
            ". With one pretraining run per rate and budget this compares checkpoints, not rates: the verdict waits for "
            "pretraining seeds." if (table.pretrain_seeds_a < 2).any() else ".")
        ratios = papers.rate_budget_ratios(table.steps)
        return [shown, fig,
                f"**Reading:** {reading} The paper's budgets ({', '.join(f'{s:,}' for s in ratios['theirs'])} steps) were "
                f"{ratios['steps_min']:.0f}–{ratios['steps_max']:.0f} times ours in steps, of larger batches, and its model "
                f"{ratios['model']:.0f} times larger, so this says what happens early in training at small scale, not at theirs."]
