"""The NPMI chapter: the ranking of 6-mers our PMI counting gives, its variants, and the authors'."""
from __future__ import annotations

import json

import pandas as pd

from ..results import stage_results


class Chapter:
    """The PMI chapter for one profile: every 01_pmi cell's folder and parameters, by (pmi, normalizer)."""

    def __init__(self, profile: str | None = None):
        self.profile, cells = stage_results("pmi", profile)
        if cells is None:
            raise SystemExit(f"no 01_pmi results for profile {self.profile!r}: run `make reproduce` or "
                             f"`make grid PROFILE={self.profile}`")
        self.runs = {(row.pmi, row.normalizer): (row.dir, json.loads((row.dir / "params.json").read_text()))
                     for row in cells.itertuples()}
        self.main_dir, self.main_params = self.runs.get(("segmentation", "per_length"), next(iter(self.runs.values())))
        self.ranks = pd.read_csv(self.main_dir / "variant_ranks.csv")
        rows = [{"pmi": variant, "normalizer": normalizer, **pd.read_csv(directory / "authors_agreement.csv").iloc[0].to_dict()}
                for (variant, normalizer), (directory, _) in self.runs.items() if (directory / "authors_agreement.csv").exists()]
        self.agreement = pd.DataFrame(rows)

    def scale(self) -> str:
        params = self.main_params
        fasta = [p.rsplit("/", 1)[-1] for p in params["config"]["fasta"]]
        return (f"**Scale of these results** — profile `{self.profile}`; n-grams n = 1..{params['config']['max_n']} counted on "
                f"{params['totals']['1']:,} A/C/G/T bases from {len(fasta)} file(s) ({', '.join(fasta)}); "
                f"minimum count {params['config']['min_count']}. GeneMask counted GRCh38 chr1–3 (669 Mbp).")

    def npmi_by_n(self):
        import matplotlib.pyplot as plt

        summary = pd.read_csv(self.main_dir / "npmi_by_n.csv")
        fig, ax = plt.subplots()
        ax.fill_between(summary["n"], summary["5%"], summary["95%"], alpha=0.3, label="5–95 %")
        ax.plot(summary["n"], summary["50%"], marker="o", label="median")
        ax.set(xlabel="n-gram length n", ylabel="NPMI")
        ax2 = ax.twinx()
        ax2.bar(summary["n"], summary["n_ngrams"], alpha=0.15, color="grey")
        ax2.set(ylabel="n-grams kept", yscale="log")
        ax2.grid(False)
        ax.legend(loc="upper left")
        return fig

    def variant_scatter(self):
        import matplotlib.pyplot as plt

        ranks = self.ranks
        fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
        for ax, column in zip(axes, ["rank_naive", "rank_segmentation"]):
            ax.scatter(ranks[column], ranks["rank_npmi"], s=2, alpha=0.4)
            rho = ranks[column].corr(ranks["rank_npmi"], method="spearman")
            ax.set(xlabel=column.replace("_", " "), title=f"Spearman {rho:.3f}")
        axes[0].set_ylabel("rank by NPMI")
        return fig

    def agreement_table(self):
        if self.agreement.empty:
            return "This profile did not compare with the authors' ranking (`authors_ranking` not set)."
        # one column per PMI definition: the measures as rows keep the table inside the page
        table = self.agreement.round(3).set_index(["pmi", "normalizer"]).T
        table.columns = [f"{pmi}, {normalizer}" for pmi, normalizer in table.columns]
        return table

    def authors_scatter(self):
        import matplotlib.pyplot as plt
        import seaborn as sns

        ax = None
        for (variant, normalizer), (directory, _) in self.runs.items():
            path = directory / "authors_vs_ours.csv"
            if path.exists():
                ax = sns.scatterplot(data=pd.read_csv(path), x="rank_authors", y="rank_ours", s=3, alpha=0.3, linewidth=0,
                                     label=f"{variant}, {normalizer}")
        if self.agreement.empty or ax is None:
            plt.close("all")
            return None
        ax.set(xlabel="authors' rank (Data-A)", ylabel="our rank")
        return ax.figure

    def deciles(self):
        import seaborn as sns

        ax = sns.barplot(data=pd.read_csv(self.main_dir / "decile_share.csv"), x="decile", y="share", color="#8fb3d9")
        ax.set(xlabel="NPMI rank decile (1 = best)", ylabel="share of 6-mer occurrences")
        return ax.figure

    def answer(self) -> list:
        agreement = self.agreement
        if agreement.empty:
            return [f"Profile `{self.profile}` has no comparison with the authors' ranking; the cpu profile has one."]
        best = agreement.sort_values("spearman_rho", ascending=False).iloc[0]
        default = agreement[(agreement.pmi == "segmentation") & (agreement.normalizer == "per_length")]
        text = (f"With the released code's definition (`{best.pmi}`, `{best.normalizer}` normaliser) our ranking from "
                f"{self.main_params['totals']['1'] / 1e6:.1f} Mbp reaches Spearman ρ = {best.spearman_rho:.3f} with the authors' "
                f"ranking from 669 Mbp, and {int(best.top100_overlap)} of their top 100 6-mers are in ours. ")
        if len(default):
            d = default.iloc[0]
            text += (f"With the standard definition (minimum over all segmentations, per-length normaliser) ρ = "
                     f"{d.spearman_rho:.3f} and the top-100 overlap is {int(d.top100_overlap)}: the definition, not only "
                     "the amount of sequence, separates the two rankings.")
        authors = pd.read_csv(next(d for d, _ in self.runs.values() if (d / "authors_vs_ours.csv").exists()) / "authors_vs_ours.csv")
        return [text, pd.DataFrame({"authors' top 10": authors.nsmallest(10, "rank_authors")["kmer"].to_numpy(),
                                    "our top 10": authors.nsmallest(10, "rank_ours")["kmer"].to_numpy()},
                                   index=pd.RangeIndex(1, 11, name="rank"))]
