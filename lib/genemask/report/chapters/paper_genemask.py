"""The GeneMask (ECAI 2023) chapter, table by table: the paper's numbers [Q] beside ours at our scale."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import published
from .. import bugs, papers

FOUR_LABELS = [published.DATASET_LABELS[d] for d in papers.FOUR]


class Chapter:
    """The GeneMask chapter for one profile, its results read once."""

    def __init__(self, profile: str | None = None):
        self.data = data = papers.collect_results(profile)
        self.profile = data.profile
        self.have_fewshot = data.fewshot is not None and data.pretrain_cells is not None
        self.stats = papers.fewshot_stats(data.fewshot) if self.have_fewshot else None
        self.runs = papers.main_runs(data.fewshot.model) if self.have_fewshot else {}
        self.t1 = published.values("GeneMask", "T1")
        self.acc = self.t1[self.t1.metric == "accuracy"]

    def scale(self) -> str:
        if not self.have_fewshot:
            return (f"**Profile `{self.profile}` has no few-shot results on the papers' datasets**; the sections show the "
                    "paper's values only.")
        scale = papers.scale(self.data.pretrain_cells, self.data.fewshot_runs, set(self.data.fewshot.model))
        return f"**Scale (profile `{self.profile}`).** {scale.caption()}"

    def verdicts(self) -> list:
        """The frozen plan's family for this page: the paper's comparisons at our scale, in its metric with
        MCC beside, on every evidence the plan names, Holm across it (:func:`plan_verdicts`). The tables
        that follow set numbers side by side; they describe, this decides."""
        from . import plan_verdicts

        return plan_verdicts("paper_genemask", self.profile, every_metric=True)

    def table1(self) -> list:
        t1, out = self.t1, []
        for metric in ("accuracy", "auc"):
            part = t1[(t1.block == "DNABERT") & (t1.metric == metric)].copy()
            part["cell"] = [papers.cell(v, s, sig=g) for v, s, g in zip(part.value, part.sd, part.sig)]
            part["dataset"] = part.dataset.map(published.DATASET_LABELS)
            wide = part.pivot_table(index=["shots", "model"], columns="dataset", values="cell", aggfunc="first", sort=False)
            out += [f"**{metric.upper() if metric == 'auc' else 'Accuracy'}**, DNABERT, mean ± sd over 10 runs [Q]",
                    papers.compact(wide[FOUR_LABELS])]
        return out + ["**Inconsistencies in the published table** (the cells concerned):",
                      papers.compact(papers.anomalies("GeneMask", "T1"), index=False, wrap=True)]

    def table1_ours(self) -> list:
        runs, stats, data = self.runs, self.stats, self.data
        if not (self.have_fewshot and {"random", "genemask"} <= set(runs)):
            return []
        rows = {"ORI 10K": runs["random"], "GeneMask 10K": runs["genemask"]}
        logo = self.t1[self.t1.block == "LOGO"]
        out = []
        for metric in ("accuracy", "auc"):
            name = "accuracy" if metric == "accuracy" else "AUC"
            gap = papers.largest_gap(logo, stats, rows, metric)
            out += [f"**{'Accuracy' if metric == 'accuracy' else 'AUC'}**: paper (LOGO, 10K steps, fine-tuned, 10 runs) | "
                    f"ours (`{runs['random']}`, `{runs['genemask']}`) | gap = ours − paper",
                    papers.compact(papers.fewshot_side_by_side(logo, stats, rows, metric)),
                    f"Largest gap in {name}: {gap['model']} on {published.DATASET_LABELS[gap['dataset']]} at {gap['shots']} shots, "
                    f"ours {gap['ours']:.3f} vs the paper's {gap['paper']:.3f} ({gap['gap']:+.3f})."]
        # the untrained model of the same size beside them: how much either pretraining gives at all
        size = papers.identity(runs["random"])["size"]
        untrained = [m for m in stats.model.unique() if (papers.identity(m)["strategy"], papers.identity(m)["size"]) == ("none", size)]
        mcc = stats[(stats.metric == "mcc") & stats.model.isin([*rows.values(), *untrained]) & stats.dataset.isin(papers.FOUR)].copy()
        mcc["cell"] = [papers.cell(m, s) for m, s in zip(mcc["mean"], mcc["sd"])]
        mcc["dataset"] = mcc.dataset.map(published.DATASET_LABELS)
        out += ["**MCC beside it** (ours only; the paper does not report MCC"
                + (f"; `{untrained[0]}` is the untrained model, fine-tuned the same way" if untrained else "") + "):",
                papers.compact(mcc.pivot_table(index=["shot", "model"], columns="dataset", values="cell", aggfunc="first")[FOUR_LABELS])]
        notes = papers.sampling_notes(data.fewshot_runs)
        if len(notes):
            out += ["**Where our data departs from the paper's protocol** (from the run tables):",
                    papers.compact(notes.set_index("dataset"), wrap=True)]
        return out + ["The 500- and 1000-shot rows of the paper have no counterpart: we ran "
                      + ", ".join(map(str, sorted(data.fewshot.shot.unique()))) + " shots per class."]

    def table2(self) -> list:
        t2, acc, runs = published.values("GeneMask", "T2"), self.acc, self.runs
        table2 = pd.DataFrame({
            "paper DNABERT [Q]": t2[t2.block == "DNABERT"].set_index("shots")["value"],
            "recomputed from T1/T4": papers.improvement_by_shot(
                pd.concat([acc[(acc.block == "DNABERT") & (acc.model == "ORI 10K")], published.values("GeneMask", "T4", model="GeneMask")]),
                "GeneMask", "ORI 10K"),
            "paper LOGO [Q]": t2[t2.block == "LOGO"].set_index("shots")["value"],
            "recomputed from T1 LOGO": papers.improvement_by_shot(acc[acc.block == "LOGO"], "GeneMask 10K", "ORI 10K"),
        })
        if self.have_fewshot and {"random", "genemask"} <= set(runs):
            ours = papers.our_improvement(self.data.fewshot, runs["genemask"], runs["random"]).set_index("shots")
            table2["ours (LOGO size; 95 % interval, descriptive)"] = [papers.cell(ours.pct.get(n, np.nan), digits=2)
                                          + (f" [{ours.ci95_low[n]:+.2f}, {ours.ci95_high[n]:+.2f}]" if n in ours.index else "")
                                          for n in table2.index]
        table2.index.name = "shots per class"
        table2.columns = [f"{c} (%)" for c in table2.columns]
        return ["**% improvement in 4-dataset mean accuracy** (GeneMask over random masking; ours with a 95 % interval over seeds)",
                papers.compact(table2, precision=2, wrap_headers=True)]

    def table3(self) -> list:
        t3 = published.values("GeneMask", "T3").set_index("shots")["value"]
        dnabert = self.acc[self.acc.block == "DNABERT"]
        table3 = pd.DataFrame({"paper [Q] (%)": t3, "recomputed from T1 (%)": papers.improvement_by_shot(dnabert, "GeneMaskBest", "ORI 120K")})
        table3.index.name = "shots per class"
        return [papers.compact(table3, precision=2),
                "**Not testable here**: we have no 120K-step model, and GeneMaskBest is a per-cell choice among three "
                "pretrained models, which a single pretraining run per strategy cannot reproduce."]

    def table4(self) -> list:
        t4 = published.values("GeneMask", "T4")
        t4 = t4.assign(cell=[papers.cell(v, s) for v, s in zip(t4.value, t4.sd)], dataset=t4.dataset.map(published.DATASET_LABELS))
        best = papers.genemask_best_check()
        out = [papers.compact(t4.pivot_table(index=["shots", "model"], columns="dataset", values="cell", aggfunc="first", sort=False)[FOUR_LABELS]),
               f"GeneMaskBest (Table 1) equals the per-cell maximum of the three variants in "
               f"{int((best['GeneMaskBest (T1)'] == best['max of T4']).sum())} of {len(best)} cells; the chosen variant per cell:",
               papers.compact(best.pivot(index="shots", columns="dataset", values="chosen variant")[FOUR_LABELS])]
        if self.have_fewshot and "genemask" in self.runs:
            stats = self.stats
            ours = stats[(stats.model == self.runs["genemask"]) & (stats.metric == "accuracy") & stats.dataset.isin(papers.FOUR)].copy()
            ours["cell"] = [papers.cell(m, s) for m, s in zip(ours["mean"], ours["sd"])]
            ours["dataset"] = ours.dataset.map(published.DATASET_LABELS)
            out += [f"**Ours**: the base variant only (`{self.runs['genemask']}`), accuracy, mean ± sd over seeds:",
                    papers.compact(ours.pivot(index="shot", columns="dataset", values="cell")[FOUR_LABELS])]
        return out

    def table5(self) -> list:
        ranks = papers.rankings(self.data, bugs.resolve_rank_table("${GENEMASK_DATA}/genemask/Data-A_norm-pmi-score-ranking.csv",
                                                                  self.profile))
        table5 = papers.motif_rank_table(ranks)
        out = [] if "Data-A" in ranks else ["The authors' Data-A ranking is not under `$GENEMASK_DATA`; only our rankings are shown."]
        out.append(papers.compact(table5.rename(columns={"paper": "paper [Q]"}), index=False, wrap=True))
        if "Data-A" in ranks:
            same = (table5["paper"] == table5["Data-A"]).sum()
            out.append(f"The authors' file gives the published ranks for {same} of {len(table5)} rows exactly. Our rankings come "
                       "from a much smaller corpus than the authors' (PMI chapter), so their ranks differ.")
        return out

    def figure2(self) -> list:
        import matplotlib.pyplot as plt

        data = self.data
        fig2 = published.values("GeneMask", "Fig2")
        wide2 = fig2.pivot_table(index=["block", "model"], columns="metric", values="value", sort=False)
        readings = pd.DataFrame({
            "falls between steps": [f"{a:,.0f}–{b:,.0f}" if np.isfinite(a) else (f"declines from {d:,.0f}" if np.isfinite(d) else "")
                                    for a, b, d in zip(wide2.get("collapse_start_step", np.nan), wide2.get("collapse_end_step", np.nan),
                                                       wide2.get("decline_start_step", np.nan))],
            "plateau before": [f"{lo:,.0f}–{hi:,.0f}" if np.isfinite(lo) else "" for lo, hi in
                               zip(wide2.get("plateau_perplexity_low", np.nan), wide2.get("plateau_perplexity_high", np.nan))],
            "perplexity at 10K steps": [f"≈{v:g}" if np.isfinite(v) else "" for v in wide2.get("final_perplexity", np.nan)],
        }, index=wide2.index)
        out = ["**The paper's readings** (Fig. 2, 10K steps; read off a log-scale raster figure, ±1 unit of the last digit) [I]",
               papers.compact(readings)]
        if not data.metrics:
            return out
        longest = max(papers.identity(x)["steps"] for x in data.metrics if papers.identity(x)["main"])
        main = {r: m for r, m in data.metrics.items() if papers.identity(r)["main"] and papers.identity(r)["steps"] == longest}
        fig, ax = plt.subplots(figsize=(9, 4.6))
        for run, metrics in main.items():
            evals = metrics[metrics.val_perplexity.notna()]
            ax.plot(evals.step, evals.val_perplexity, marker=".", lw=1.2, label=f"ours: {run}")
        low, high = wide2.loc[("DNABERT", "all DNABert curves"), ["plateau_perplexity_low", "plateau_perplexity_high"]]
        ax.axhspan(low, high, color="grey", alpha=0.25, label="paper: DNABERT plateau before its collapse")
        logo_final = wide2.loc["LOGO", "final_perplexity"]
        ax.axhspan(logo_final.min(), logo_final.max(), color="tab:red", alpha=0.25,
                   label="paper: LOGO perplexity at 10K steps (" + ", ".join(f"{m} ≈{v:g}" for m, v in logo_final.items()) + ")")
        ax.set(yscale="log", xlabel="pretraining step", ylabel="validation perplexity (log scale)")
        ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
        fig.tight_layout()
        rows = [{"run": r, **papers.perplexity_profile(m)} for r, m in main.items()]
        profile_table = pd.DataFrame(rows).set_index("run")[["first", "final", "last_step", "collapse_step"]]
        profile_table.columns = ["first", "final", "last step", "100× drop at step"]
        first = int(fig2[fig2.metric.isin(["collapse_start_step", "decline_start_step"])]["value"].min())
        return out + [fig, "**Ours**, validation perplexity at the first evaluation and at the end, and the step where it first fell "
                      "a hundredfold below its peak (Fig. 2's collapse):",
                      papers.compact(profile_table, precision=0).format(precision=0, na_rep="none", thousands=","),
                      f"Our runs stop at {profile_table['last step'].max():,} steps, before the earliest step where the paper's curves "
                      f"start to fall (about {first:,}): the collapse is not testable at our budget."]

    def figure3(self) -> list:
        f3, acc = published.values("GeneMask", "Fig3-appendix"), self.acc
        rows = []
        for block, model, t1_model in (("DNABERT", "GeneMaskBest", "GeneMaskBest"), ("DNABERT", "ORI 10K", "ORI 10K"),
                                       ("LOGO", "GeneMask 10K", "GeneMask 10K"), ("LOGO", "ORI 10K", "ORI 10K")):
            for dataset in papers.FOUR:
                full = f3[(f3.block == block) & (f3.model == model) & (f3.dataset == dataset)]["printed"]
                k1000 = acc[(acc.block == block) & (acc.model == t1_model) & (acc.dataset == dataset) & (acc.shots == 1000)]["value"]
                rows.append({"block": block, "model": model, "dataset": published.DATASET_LABELS[dataset],
                             "cell": f"{float(k1000.iloc[0]):.3f} → ≈{full.iloc[0]}"})  # a reading, at its own precision
        f3_table = pd.DataFrame(rows).pivot_table(index=["block", "model"], columns="dataset", values="cell", aggfunc="first", sort=False)
        out = ["**Accuracy at 1000 shots per class [Q] → on the full training set [I]**:", papers.compact(f3_table[FOUR_LABELS])]
        if self.have_fewshot:
            out.append(f"**Not testable here**: our largest training set is {int(self.data.fewshot.shot.max())} per class; we ran no "
                       "full-data evaluation.")
        return out
