"""The CM-GEMS (ECAI 2024) chapter, table by table: the paper's numbers [Q] beside ours at our scale."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import published
from .. import findings as findings_report, ledger, papers
from .. import pretrain as pretrain_report

STRATEGIES = ("random", "genemask", "global", "cmstep", "cmgems")


def _worst(side: pd.DataFrame) -> tuple[tuple[str, str], float]:
    gaps = side.xs("gap", axis=1, level=1).iloc[:-2]
    worst = gaps.abs().stack().idxmax()
    return worst, gaps.loc[worst]


class Chapter:
    """The CM-GEMS chapter for one profile, its results read once."""

    def __init__(self, profile: str | None = None):
        self.data = data = papers.collect_results(profile)
        self.profile = data.profile
        self.have_gue = data.gue is not None and data.pretrain_cells is not None
        self.have_fewshot = data.fewshot is not None and data.pretrain_cells is not None
        self.ctx = ledger.Context(fewshot=data.fewshot, gue=data.gue, metrics=data.metrics)
        self.gue_runs = ledger._runs(self.ctx, data.gue.model) if self.have_gue else {}
        self.fs_runs = ledger._runs(self.ctx, data.fewshot.model) if self.have_fewshot else {}
        self.side6 = None

    def scale(self) -> list:
        data, out = self.data, []
        if self.have_gue:
            gue_scale = papers.scale(data.pretrain_cells, data.gue_runs, set(data.gue.model))
            out.append(f"**Scale of our GUE runs (profile `{self.profile}`).** {gue_scale.caption()} One seed per task, as in the paper; "
                       f"{data.gue.task.nunique()} of GUE's tasks.")
        if self.have_fewshot:
            fs_scale = papers.scale(data.pretrain_cells, data.fewshot_runs, set(data.fewshot.model))
            out.append(f"**Scale of our few-shot runs.** {fs_scale.caption()}")
        if data.metrics:
            switches = {r: pretrain_report.switch_step(m) for r, m in data.metrics.items() if papers.identity(r)["strategy"] == "cmgems"}
            out.append("**Our CM-GEMS runs**: " + "; ".join(
                f"`{r}` " + (f"switched to Global at step {s:,}" if s is not None else "never switched to Global")
                for r, s in switches.items())
                + ". A run that never switched is GeneMask throughout, so the curriculum is represented by the one that did.")
        return out

    def verdicts(self) -> list:
        """The frozen plan's family for this page: the paper's comparisons at our scale, in its metric with
        MCC beside, on every evidence the plan names, Holm across it (:func:`plan_verdicts`). The tables
        that follow set numbers side by side; they describe, this decides."""
        from . import plan_verdicts

        return plan_verdicts("paper_cmgems", self.profile, every_metric=True)

    def table2(self) -> list:
        t2 = published.values("CM-GEMS", "T2")
        printed = t2[t2.dataset.str.startswith("mean")]
        rows_all = t2[~t2.dataset.str.startswith("mean")]
        check = rows_all.assign(group=np.where(rows_all.dataset.map(papers.species) == "human", "mean (human)", "mean (non-human)")) \
            .groupby(["block", "model", "group"])["value"].mean().rename("recomputed")
        joined = printed.set_index(["block", "model", "dataset"])["value"].rename("printed").to_frame().join(
            check.rename_axis(["block", "model", "dataset"]))
        out = [f"The paper's printed species means reproduce from its rows in {int(np.isclose(joined.printed, joined.recomputed, atol=0.006).sum())} "
               f"of {len(joined)} columns. Quoted baselines: {', '.join(sorted(set(t2[t2.block == 'baseline'].model)))} "
               "(copied from DNABERT-2's Tables 6 and 10; the 'DNABERT-2' columns are its human-genome-only ablation)."]
        if self.have_gue and {"genemask", "cmgems"} <= set(self.gue_runs):
            rows = {"GeneMask 10K": self.gue_runs["genemask"], "CM-GEMS 10K": self.gue_runs["cmgems"]}
            side = papers.gue_side_by_side(t2[t2.block == "LOGO"], self.data.gue, rows)
            base = papers.published_gue_wide("T2", "baseline")
            side[("DNABERT 120K [Q]", "paper")] = base["DNABERT 120K"].reindex(side.index[: -2]).tolist() + \
                [base.loc[[t for t in side.index[:-2] if papers.species(t) == g], "DNABERT 120K"].mean() for g in ("human", "non-human")]
            worst, gap = _worst(side)
            out += ["**MCC × 100**: paper LOGO 10K | ours (1K steps, linear probe) | gap = ours − paper",
                    papers.compact(side).format(precision=1, na_rep=""),
                    "**The paper's printed species means** (over all its tasks, as printed) beside ours (over our tasks):",
                    papers.compact(pd.concat({
                        "LOGO": papers.printed_means(t2[t2.block == "LOGO"], side, ["GeneMask 10K", "CM-GEMS 10K"]),
                        "DNABERT": papers.printed_means(t2[t2.block == "DNABERT"], side[[]], ["GeneMask 10K", "CM-GEMS 10K"]),
                        "baseline": papers.printed_means(t2[t2.block == "baseline"], side[[]], ["DNABERT 120K"])},
                        names=["block", "model"]), wrap_headers=True),
                    f"Largest gap: {worst[1]} on `{worst[0]}`, {gap:+.1f} MCC × 100. Inconsistencies in the published table:"]
        out.append(papers.compact(papers.anomalies("CM-GEMS", "T2")[["block", "model", "dataset", "value", "note"]], index=False, wrap=True))
        return out

    def table3(self) -> list:
        t3 = published.values("CM-GEMS", "T3")
        wide2 = papers.published_gue_wide("T2")
        recomputed = papers.paired_t(wide2, "DNABERT: CM-GEMS 10K", ["baseline: DNABERT 120K", "baseline: DNABERT-2 120K (k-mer)",
                                                                     "DNABERT: GeneMask 10K"])
        recomputed["model"] = recomputed.model.str.split(": ").str[1]
        printed3 = t3.pivot_table(index="model", columns="metric", values="value").rename(
            columns={"mcc_x100": "printed mean", "p_value": "printed p"})
        printed3["printed sd"] = t3[t3.metric == "mcc_x100"].set_index("model")["sd"]
        table3 = recomputed.set_index("model")[["tasks", "mean", "sd", "p_value"]].join(printed3)
        table3 = table3[["printed mean", "mean", "printed sd", "sd", "printed p", "p_value"]]
        table3.columns = pd.MultiIndex.from_tuples([("mean", "printed"), ("mean", "recomputed"), ("sd", "printed"),
                                                    ("sd", "recomputed"), ("p", "printed"), ("p", "recomputed")])
        p_format = {("p", "printed"): "{:.3f}", ("p", "recomputed"): "{:.3f}"}
        out = ["**The paper's Table 3 [Q] and its recomputation from Table 2** (DNABERT block, 27 tasks; MCC × 100; "
               "p: two-sided paired t-test against CM-GEMS 10K):", papers.compact(table3, precision=2, formats=p_format)]
        if self.have_gue and "cmgems" in self.gue_runs:
            gue_runs = self.gue_runs
            ours_wide = self.data.gue.pivot(index="task", columns="model", values="score")
            baselines = [m for m in ours_wide.columns if m != gue_runs.get("cmgems")]
            ours3 = papers.paired_t(ours_wide, gue_runs["cmgems"], baselines).set_index("model")
            logo_wide = papers.published_gue_wide("T2", "LOGO").loc[ours_wide.index]
            same_tasks = papers.paired_t(logo_wide, "CM-GEMS 10K", ["GeneMask 10K", "Global 10K", "CM-Step 10K"]).set_index("model")
            out += [f"**Ours** (MCC × 100 over our {ours_wide.shape[0]} tasks, one seed, paired t against `{gue_runs['cmgems']}`):",
                    papers.compact(ours3, precision=2, formats={"p_value": "{:.3f}"}),
                    "**The paper's LOGO block on the same tasks** (the same test, for a like-for-like comparison):",
                    papers.compact(same_tasks, precision=2, formats={"p_value": "{:.3f}"})]
        return out

    def table4(self) -> list:
        data, fs_runs = self.data, self.fs_runs
        t4 = published.values("CM-GEMS", "T4")
        order = ["DNABERT 10K", "GeneMask 10K", "Global 10K", "CM-Step 10K", "CM-GEMS 10K"]
        labels = [published.DATASET_LABELS[d] for d in papers.FIVE]
        out = []
        for n in (10, 50):
            blocks = []
            for name in order:
                strategy = {v: k for k, v in papers.CMGEMS_FEWSHOT_ROW.items()}[name]
                pub = t4[(t4.model == name) & (t4.shots == n)]
                paper_row = {published.DATASET_LABELS[d]: v for d, v in zip(pub.dataset, pub.value)}
                paper_row["mean"] = float(np.mean([paper_row[c] for c in labels]))
                blocks.append({"model": name, "source": "paper [Q]", **paper_row})
                if self.have_fewshot and strategy in fs_runs:
                    ours = data.fewshot[(data.fewshot.model == fs_runs[strategy]) & (data.fewshot.metric == "accuracy") & (data.fewshot.shot == n)]
                    our_row = {published.DATASET_LABELS[d]: v for d, v in ours.groupby("dataset")["value"].mean().items()}
                    our_row["mean"] = float(np.mean([our_row[c] for c in labels if c in our_row]))
                    blocks.append({"model": name, "source": "ours", **our_row})
                    blocks.append({"model": name, "source": "gap", **{c: our_row.get(c, np.nan) - paper_row.get(c, np.nan)
                                                                       for c in [*labels, "mean"]}})
            table4 = pd.DataFrame(blocks).set_index(["model", "source"])[[*labels, "mean"]]
            out += [f"**Accuracy, {n} shots per class** (paper: DNABERT-size, 10K steps, fine-tuned, mean of 10 runs; ours: mean over seeds"
                    + (" of " + ", ".join(f"`{fs_runs[s]}`" for s in STRATEGIES if s in fs_runs) if self.have_fewshot else "")
                    + ")", papers.compact(table4)]
        printed = t4[t4.dataset == "mean"].set_index("model")["printed"]
        out += ["The paper's printed means over all ten cells: " + "; ".join(f"{m} {printed[m]}" for m in order) + ".",
                f"{ledger.finding('M-5')} {ledger.finding('M-7')}"]
        if self.have_fewshot:
            fewshot = data.fewshot
            out.append("**MCC beside it** (ours, 5 datasets × 10/50 shots, mean over seeds): " + "; ".join(
                f"`{fs_runs[s]}` {fewshot[(fewshot.model == fs_runs[s]) & (fewshot.metric == 'mcc') & fewshot.shot.isin([10, 50])]['value'].mean():.3f}"
                for s in STRATEGIES if s in fs_runs))
        return out

    def table6(self) -> list:
        import matplotlib.pyplot as plt

        out = [f"On the model size: {ledger.finding('M-8')} Ours: {ledger.CHECKS['logo_parameters'](self.ctx).ours}."]
        t6 = published.values("CM-GEMS", "T6")
        fig3 = published.values("CM-GEMS", "Fig3")
        both = self.have_gue and {"genemask", "cmgems"} <= set(self.gue_runs)
        if both:
            rows = {"GeneMask 1K": self.gue_runs["genemask"], "CM-GEMS 1K": self.gue_runs["cmgems"]}
            side6 = papers.gue_side_by_side(t6[t6.block == "LOGO"], self.data.gue, rows)
            worst, gap = _worst(side6)
            out += ["**Table 6, MCC × 100**: paper LOGO 1K | ours 1K | gap", papers.compact(side6).format(precision=1, na_rep=""),
                    "**The paper's printed species means** (over all its tasks, as printed) beside ours (over our tasks):",
                    papers.compact(pd.concat({
                        "LOGO": papers.printed_means(t6[t6.block == "LOGO"], side6, ["GeneMask 1K", "CM-GEMS 1K"]),
                        "DNABERT": papers.printed_means(t6[t6.block == "DNABERT"], side6[[]], ["GeneMask 1K", "CM-GEMS 1K"])},
                        names=["block", "model"]), wrap_headers=True),
                    f"Largest gap: {worst[1]} on `{worst[0]}`, {gap:+.1f}."]
        out += ["**Inconsistencies in the published table:**",
                papers.compact(papers.anomalies("CM-GEMS", "T6")[["block", "model", "dataset", "value", "note"]], index=False, wrap=True)]
        if not both:
            return out
        # Fig. 3: species means, the paper's bars over all its tasks and over our tasks only, and ours
        bars = []
        for block_model, ours_model in (("GeneMask 1K", self.gue_runs["genemask"]), ("CM-GEMS 1K", self.gue_runs["cmgems"])):
            for group in ("human", "non-human"):
                label = f"mean ({group})"
                ours_tasks = [t for t in side6.index[:-2] if papers.species(t) == group]
                published_bar = fig3[(fig3.block == "LOGO") & (fig3.model == block_model) & (fig3.dataset == label)].iloc[0]
                bars.append({"model": f"LOGO {block_model}", "species": group,
                             "paper, all tasks [Q]": float(published_bar["value"]), "printed": published_bar["printed"],
                             "paper, our tasks": float(side6.loc[ours_tasks, (block_model, "paper")].mean()),
                             "ours": float(side6.loc[ours_tasks, (block_model, "ours")].mean())})
        sota = fig3[fig3.block == "baseline"].set_index("dataset")["value"]
        sota_printed = fig3[fig3.block == "baseline"].set_index("dataset")["printed"]
        bars = pd.DataFrame(bars)
        # CM-2's one ratio (papers.share_of_sota, also the ledger's): ours over SoTA-Best on the same tasks
        shares = {m: papers.share_of_sota(side6[(m, "ours")].iloc[:-2].dropna()) for m in ("GeneMask 1K", "CM-GEMS 1K")}
        bars["ours / SoTA-Best, our tasks (%)"] = [100 * shares[m.removeprefix("LOGO ")].loc[g, "share"]
                                                   for m, g in zip(bars["model"], bars["species"])]
        fig, ax = plt.subplots(figsize=(8, 3.4))
        labels = [f"{m}\n{s}" for m, s in zip(bars.model, bars.species)]
        x = np.arange(len(bars))
        for i, column in enumerate(["paper, all tasks [Q]", "paper, our tasks", "ours"]):
            ax.bar(x + (i - 1) * 0.27, bars[column], width=0.27, label=column)
        for group, value in sota.items():
            species_name = group.removeprefix("mean (").removesuffix(")")
            ax.axhline(value, ls=":", color="black", lw=1)
            ax.annotate(f"SoTA-Best 120K, {species_name}: {sota_printed[group]}", (x[0] - 0.45, value), fontsize=8, va="bottom", ha="left")
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel("species mean, MCC × 100")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=3)
        fig.tight_layout()
        return out + ["**Figure 3, species means (MCC × 100)**; SoTA-Best is the paper's best 120K k-mer model per species, over all its "
                      "tasks (the dotted lines) or, for our share (claim CM-2), over the tasks we ran:",
                      papers.compact(bars.assign(**{"paper, all tasks [Q]": bars.pop("printed")}).set_index(["model", "species"]),
                                     precision=1, wrap_headers=True), fig]

    def figure4(self) -> list:
        data = self.data
        f4 = published.values("CM-GEMS", "Fig4")
        readings = f4[f4.metric == "accuracy"].pivot_table(index=["model", "shots"], columns="steps", values="value")
        readings.columns = [f"{c:,} steps" for c in readings.columns]
        drops = f4[f4.metric == "pct_drop"].set_index("shots")["value"]
        out = ["**The paper's readings** (5-dataset mean accuracy, read off the figure [I]) and its quoted drop at 10K steps [Q]: "
               + ", ".join(f"{n}-shot {v:.2f} %" for n, v in drops.items()), papers.compact(readings)]
        if data.rate is None or not self.have_fewshot:
            return out
        rate, fewshot = data.rate, data.fewshot
        same = fewshot.set_index(["dataset", "shot", "seed"]).index.isin(rate.set_index(["dataset", "shot", "seed"]).index)
        rate = pd.concat([rate, fewshot[same & (fewshot.pretrain_strategy == "genemask") & (fewshot.pretrain_ranking != "Data-A")]],
                         ignore_index=True)
        rows = []
        for n in (10, 50):
            effect = findings_report.rate_effect(rate[rate.shot == n], "genemask", 0.05, "accuracy")
            for r in effect.itertuples():
                rows.append({"shots": n, "steps": r.steps, "default": r.default_mean, "doubled": r.doubled_mean,
                             "% change (paper's formula)": (r.doubled_mean / r.default_mean - 1) * 100,
                             "difference [95 % interval, descriptive]": f"{r.mean_difference:+.3f} [{r.ci95_low:+.3f}, {r.ci95_high:+.3f}]"})
        ours4 = pd.DataFrame(rows).set_index(["shots", "steps"])
        return out + ["**Ours**: GeneMask at its default and doubled centre probability, 5-dataset mean accuracy, mean over seeds:",
                      papers.compact(ours4, formats={"% change (paper's formula)": "{:+.2f}"}),
                      "The paper's 15 % curve at 10K steps equals its Table 4 DNABERT 10K means, and its 30 % points follow from the "
                      "quoted drops; the 2K-step model beats the 10K-step one on 10-shot in its own figure."]
