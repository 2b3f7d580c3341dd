"""The motif chapter: whether the top of the NPMI ranking carries promoter signal beyond GC content."""
from __future__ import annotations

import pandas as pd

from ..results import collect, stage_results


def p(value: float) -> str:
    """A p-value as the chapter prints it: ``3e-05`` below 0.001, else two significant digits."""
    return f"{value:.0e}" if value < 1e-3 else f"{value:.2g}"


def short(dataset: str) -> str:
    """A column header that fits: GUE task paths lose their group ("prom/prom_core_all" -> "GUE core_all")."""
    return "GUE " + dataset.rsplit("/", 1)[-1].removeprefix("prom_") if "/" in dataset else dataset


def plain_table(frame: pd.DataFrame):
    """A compact table without the index header row; cells do not wrap."""
    from IPython.display import HTML

    frame = frame.copy()
    frame.columns.name = None
    html = frame.to_html(index=False)
    return HTML(html.replace('class="dataframe">', 'class="dataframe" style="white-space: nowrap">', 1))


class Chapter:
    """The motif chapter for one profile, its results read once."""

    def __init__(self, profile: str | None = None):
        self.profile, cells = stage_results("motifs", profile)
        self.summary, self.top_kmers, self.bins, pools = (collect(cells, name) for name in (
            "enrichment_summary.csv", "top_kmers.csv", "enrichment_by_rank.csv", "sequences.csv"))
        if self.summary is not None:
            self.pools = pools.drop_duplicates("dataset").set_index("dataset")
            self.datasets = list(self.pools.index)
            self.rankings = list(self.summary["ranking"].unique())

    def scale(self) -> str:
        profile, summary = self.profile, self.summary
        if summary is None:
            return (f"**Profile `{profile}` has no motif-analysis results yet.** Run its grid (`make grid PROFILE={profile}`; "
                    "`make reproduce` for the demo) and rebuild the book to fill this chapter.")
        return (f"**Scale of these results** — profile `{profile}`: {len(self.rankings)} ranking(s) ({', '.join(self.rankings)}) × "
                f"{len(self.datasets)} dataset(s), {int(self.pools.n_sequences.sum()):,} labelled sequences in all; each dataset counted on "
                "the largest labelled set the data holds (table below). All 4,096 6-mers tested; cut-offs "
                + ", ".join(map(str, sorted(summary["top"].unique()))) + ".")

    def datasets_table(self) -> list:
        if self.summary is None:
            return []
        pools = self.pools
        table = pd.DataFrame({
            "dataset": pools.index,
            "file": [src.split("/", 3)[-1] if src.startswith("fewshot/genemask/") else src.rsplit("/", 1)[-1] for src in pools["source"]],
            "pos / neg": (pools.n_positive.astype(str) + " / " + pools.n_negative.astype(str)).to_numpy(),
            "bp": pools.length_median.astype(int).to_numpy(),
            "GC %": ((100 * pools.gc_positive).round(1).astype(str) + " / " + (100 * pools.gc_negative).round(1).astype(str)).to_numpy(),
            "CpG": (pools.cpg_per_100_positive.round(1).astype(str) + " / " + pools.cpg_per_100_negative.round(1).astype(str)).to_numpy()})
        out = [plain_table(table)]
        dropped = pools[(pools.duplicates_removed + pools.conflicting_removed) > 0]
        if len(dropped):
            out.append("Rows dropped: " + "; ".join(f"{d}: {int(r.duplicates_removed)} repeated, {int(r.conflicting_removed)} with both labels"
                                                     for d, r in dropped.iterrows()) + ".")
        return out

    def top100(self) -> list:
        if self.summary is None:
            return []
        out = []
        for ranking in self.rankings:
            main = self.summary[(self.summary["top"] == 100) & (self.summary.ranking == ranking)]
            out += [f"**{ranking}**", plain_table(pd.DataFrame({
                "dataset": main.dataset,
                "top vs rest": (100 * main.share_top).round(0).astype(int).astype(str) + " % vs "
                               + (100 * main.share_rest).round(1).astype(str) + " %",
                "Fisher p": main.fisher_p.map(p), "U p": main.mannwhitney_p.map(p),
                "beyond GC": main.beyond_gc_p.map(p), "beyond GC+CpG": main.beyond_gc_cpg_p.map(p)}))]
        return out

    def cutoffs(self) -> list:
        if self.summary is None:
            return []
        out = []
        for ranking in self.rankings:
            part = self.summary[self.summary.ranking == ranking]
            cell = (100 * part.share_top).round(0).astype(int).astype(str) + " % (" + part.beyond_gc_p.map(p) + ")"
            wide = part.assign(cell=cell).pivot(index="dataset", columns="top", values="cell").reindex(self.datasets)
            wide.columns = [f"top {c}" for c in wide.columns]
            rest = part[part["top"] == 100].set_index("dataset")["share_rest"].reindex(self.datasets)
            wide["rest"] = (100 * rest).round(1).astype(str) + " %"
            out += [f"**{ranking}**", plain_table(wide.reset_index())]
        return out

    def along_the_ranking(self) -> list:
        if self.summary is None:
            return []
        import matplotlib.pyplot as plt
        import seaborn as sns

        datasets, rankings = self.datasets, self.rankings
        frame = self.bins.assign(rank_mid=(self.bins.rank_from + self.bins.rank_to) / 2)
        fig, axes = plt.subplots(len(datasets), 2, figsize=(8.5, 1.9 * len(datasets) + 0.6), sharex=True, sharey="col", squeeze=False)
        for i, dataset in enumerate(datasets):
            part = frame[frame.dataset == dataset]
            for j, column in enumerate(["share_enriched", "median_beyond_gc"]):
                ax = axes[i, j]
                sns.lineplot(data=part, x="rank_mid", y=column, hue="ranking", hue_order=rankings, ax=ax, lw=1.3, legend=(i, j) == (0, 0))
                ax.axhline(0, color="k", lw=0.6)
                ax.set(xlabel="NPMI rank (1 = best)" if i == len(datasets) - 1 else "", ylabel=dataset if j == 0 else "")
        axes[0, 0].set_title("share significantly enriched", fontsize=11)
        axes[0, 1].set_title("median log2 OR beyond GC", fontsize=11)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        axes[0, 0].get_legend().remove()
        fig.legend(handles, labels, loc="upper center", ncol=len(rankings), frameon=False, bbox_to_anchor=(0.5, 1.0))
        plt.tight_layout(rect=(0, 0, 1, 0.97))
        out = [fig]
        first = frame[frame.ranking == rankings[0]].drop_duplicates("rank_from")
        cpg = first[first.share_cpg >= 0.5]
        if len(cpg):
            out.append(f"From rank {int(cpg.rank_from.min()):,} on, most 6-mers of {rankings[0]} contain a CpG "
                       f"({100 * first[first.rank_from >= cpg.rank_from.min()].share_cpg.mean():.0f} % of them; CpG is rare in the genome, "
                       "so such 6-mers score low NPMI). A rise of the left column there is CpG-island signal, far from the 6-mers the masking "
                       "anchors on.")
        return out

    def top_kmer_tables(self) -> list:
        if self.summary is None:
            return []
        out = []
        for ranking in self.rankings:
            part = self.top_kmers[self.top_kmers.ranking == ranking]
            cell = part.log2_odds_ratio.map("{:+.2f}".format) + part.enriched.map({True: " ✓", False: ""})
            wide = part.assign(cell=cell).pivot(index=["rank", "kmer", "gc"], columns="dataset", values="cell")[self.datasets]
            out += [f"**{ranking}** (`gc`: G/C count of the 6-mer)", plain_table(wide.rename(columns=short).reset_index())]
        return out

    def answer(self) -> list:
        if self.summary is None:
            return []
        datasets, rankings, pools, bins, top_kmers = self.datasets, self.rankings, self.pools, self.bins, self.top_kmers
        main = self.summary[self.summary["top"] == 100].set_index(["ranking", "dataset"])
        promoters = [d for d in datasets if "prom" in d]
        others = [d for d in datasets if d not in promoters]
        verdict = {r: [d for d in promoters if main.at[(r, d), "beyond_gc_p"] < 0.01] for r in rankings}
        out = ["**In short:** the 100 best-ranked 6-mers carry promoter signal beyond GC content on " + "; ".join(
            f"{len(v)} of {len(promoters)} promoter sets with {r}"
            + (f" (not on {', '.join(d for d in promoters if d not in v)})" if len(v) < len(promoters) else "")
            for r, v in verdict.items()) + "."]
        for ranking in rankings:
            out.append(self._ranking_answer(main.loc[ranking], ranking, promoters, others))
        along = bins[bins.ranking == rankings[0]].groupby("dataset")
        trend = along.apply(lambda f: f["rank_from"].corr(f["median_beyond_gc"], method="spearman"), include_groups=False)
        span = along["median_beyond_gc"].agg(lambda m: m.max() - m.min())
        falling = [d for d in promoters if trend[d] <= -0.8 and span[d] >= 0.5]
        if falling:
            out.append(f"The association runs through the whole ranking, not only its top: with {rankings[0]}, the median log2 odds ratio "
                       f"beyond GC falls steadily with rank on {', '.join(falling)} (Spearman ρ between rank bin and that median "
                       + ", ".join(f"{trend[d]:.2f}" for d in falling) + "; right column of the figure).")
        if len(rankings) > 1:
            first, second = (set(top_kmers[top_kmers.ranking == r].kmer) for r in rankings[:2])
            a, b = main.loc[rankings[0]], main.loc[rankings[1]]
            gap = (a.share_top - b.share_top).abs().reindex(promoters).max()
            same = verdict[rankings[0]] == verdict[rankings[1]] and gap <= 0.1
            out.append(f"The two rankings share {len(first & second)} of their 30 best 6-mers, and their top-100 shares enriched in the promoter "
                       f"sets differ by at most {100 * gap:.0f} percentage points: "
                       + (f"the answer is the same for {rankings[1]} as for {rankings[0]}." if same else
                          f"the answers for {rankings[1]} and {rankings[0]} differ (see the tables)."))
        head = top_kmers[(top_kmers.ranking == rankings[0]) & (top_kmers["rank"] <= 10)]
        never = head.groupby(["rank", "kmer"])["enriched"].any()
        never = [k for (_, k), e in never.items() if not e]
        if never:
            out.append(f"The very best ranks are not all signal: of the 10 best-ranked 6-mers of {rankings[0]}, "
                       f"{', '.join(never)} are enriched in no dataset here. A high NPMI marks a cohesive 6-mer, such as a simple repeat, "
                       "not necessarily one that tells the classes apart.")
        if others and promoters:
            out.append(f"The negatives matter. Promoter-set negatives hold {pools.loc[promoters, 'cpg_per_100_negative'].min():.1f}–"
                       f"{pools.loc[promoters, 'cpg_per_100_negative'].max():.1f} CpG per 100 dinucleotides, against "
                       f"{pools.loc[others[0], 'cpg_per_100_negative']:.1f} in the negatives of {others[0]} (genomic windows: Genomic "
                       "Benchmarks lists their GRCh38 coordinates): the promoter negatives are "
                       "not typical genome, which fits the DNABERT recipe of replacing parts of promoter sequences by random sequence "
                       "(inferred, not verified: `reference/papers.md` §4.1). Enrichment here means *promoter against these negatives*.")
        return out

    @staticmethod
    def _ranking_answer(rows: pd.DataFrame, ranking: str, promoters: list[str], others: list[str]) -> str:
        lines = []
        part = ", ".join(f"{d} {100 * rows.at[d, 'share_top']:.0f} % vs {100 * rows.at[d, 'share_rest']:.1f} % (Fisher p = {p(rows.at[d, 'fisher_p'])})"
                         for d in promoters)
        lines.append(f"**{ranking}.** Of its 100 best-ranked 6-mers, a larger share is significantly enriched in promoters than of "
                     f"the other 6-mers in every promoter set: {part}.")
        weak = [d for d in promoters if rows.at[d, "n_top_enriched"] + rows.at[d, "n_rest_enriched"] < 100]
        if weak:
            lines.append("On " + ", ".join(f"{d} only {int(rows.at[d, 'n_top_enriched'] + rows.at[d, 'n_rest_enriched'])}"
                                          for d in weak)
                         + " of the 4,096 6-mers reach q < 0.05 at all (short sequences, few of them), so there the rank "
                         f"tests on odds ratios say more (Mann–Whitney p = {', '.join(p(rows.at[d, 'mannwhitney_p']) for d in weak)}).")
        kept = [d for d in promoters if rows.at[d, "beyond_gc_p"] < 0.01]
        lost = [d for d in promoters if rows.at[d, "beyond_gc_p"] >= 0.05]
        if kept:
            lines.append(f"Beyond GC content the shift remains on {', '.join(kept)} (p ≤ {p(rows.loc[kept, 'beyond_gc_p'].max())}; "
                         f"beyond GC and CpG, p ≤ {p(rows.loc[kept, 'beyond_gc_cpg_p'].max())}).")
        if lost:
            lines.append(f"It does not on {', '.join(lost)} (beyond GC p = "
                         + ", ".join(p(rows.at[d, "beyond_gc_p"]) for d in lost) + "): there GC content explains the enrichment.")
        for d in others:
            lines.append(f"On the contrast set {d}, {100 * rows.at[d, 'share_top']:.0f} % of the top 100 are enriched against "
                         f"{100 * rows.at[d, 'share_rest']:.1f} % of the rest, but beyond GC p = {p(rows.at[d, 'beyond_gc_p'])}: "
                         "GC-rich 6-mers are enriched, and the top of the ranking is GC-rich "
                         f"(mean {rows.at[d, 'mean_gc_top']:.2f} G/C per 6-mer against {rows.at[d, 'mean_gc_rest']:.2f}).")
        return " ".join(lines)

    @staticmethod
    def limits() -> str:
        return ("**Limits.** This is presence enrichment of fixed 6-mers, not *de novo* motif discovery: no rGADEM, no position weight "
                "matrices, no comparison with known motif databases, so it cannot say whether the enriched 6-mers are conserved motifs. "
                "It answers a narrower question the paper's claim implies: does the top of the NPMI ranking carry promoter signal, "
                "and is it more than GC content?")
