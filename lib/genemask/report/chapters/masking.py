"""The masking chapter: what each masking strategy hides, on real windows, with each ranking."""
from __future__ import annotations

import pandas as pd

from .. import masking as masking_report
from .. import results
from ..results import stage_results


class Chapter:
    """The masking chapter for one profile: every 02_masking cell, labelled by its ranking."""

    def __init__(self, profile: str | None = None):
        self.profile, cells = stage_results("masking", profile)
        if cells is None:
            raise SystemExit(f"no 02_masking results for profile {self.profile!r}: run `make reproduce` or "
                             f"`make grid PROFILE={self.profile}`")
        cells["ranking"] = [results.rank_table_label(v, self.profile) for v in cells["rank_table"]]
        self.cells, self.first, self.main_ranking = cells, cells.iloc[0], cells["ranking"].iloc[0]
        self.summary = self._read("masking_summary.csv")
        self.invariance = self._read("position_invariance.csv")
        self.source = str(self.first["fasta"]).rsplit("/", 1)[-1] if isinstance(self.first.get("fasta"), str) else "the demo genome"

    def _read(self, name: str) -> pd.DataFrame:
        return pd.concat([pd.read_csv(d / name).assign(ranking=r) for d, r in zip(self.cells["dir"], self.cells["ranking"])])

    def scale(self) -> str:
        first = self.first
        return (f"**Scale of these results** — profile `{self.profile}`; {int(first.n_sequences):,} windows of {int(first.seq_len)} nt "
                f"({int(first.seq_len) - 5} 6-mer tokens) sampled from `{self.source}` with seed {int(first.seed)}; rankings: "
                + ", ".join(self.cells["ranking"]) + ".")

    def statistics(self) -> list:
        summary = self.summary
        table = summary.assign(**{"masked %": (100 * summary.masked_fraction_mean).map("{:.1f}".format)
                                  + " ± " + (100 * summary.masked_fraction_sd).map("{:.1f}".format)})
        table = table.rename(columns={"mean_rank_masked": "rank masked", "mean_rank_unmasked": "rank unmasked",
                                      "fully_hidden_share": "fully hidden", "mean_span_length": "span", "anchors_per_sequence": "anchors"})
        return [f"With {self.main_ranking} ranking:",
                table[table.ranking == self.main_ranking].set_index("variant")[
                    ["masked %", "rank masked", "rank unmasked", "fully hidden", "span", "anchors"]].round(2)]

    def masked_by_ranking(self) -> pd.DataFrame:
        summary = self.summary
        return summary.pivot(index="variant", columns="ranking", values="masked_fraction_mean").mul(100).round(1).loc[summary.variant.unique()]

    def spans_figure(self):
        import seaborn as sns

        spans = self._read("span_lengths.csv")
        spans = spans[(spans.ranking == self.main_ranking) & (spans.span_length <= 30)]
        spans["share"] = spans["count"] / spans.groupby("variant")["count"].transform("sum")
        grid = sns.FacetGrid(spans, col="variant", col_wrap=4, height=2.4, aspect=1.2, sharey=False)
        grid.map_dataframe(sns.barplot, x="span_length", y="share", color="#8fb3d9", native_scale=True)
        grid.set_axis_labels("span length (tokens)", "share of spans")
        grid.set_titles("{col_name}")
        return grid.figure

    def invariance_table(self) -> pd.DataFrame:
        return self.invariance.pivot(index="variant", columns="ranking", values="sequences_with_identical_anchors").round(3)

    def method_figure(self):
        import matplotlib.pyplot as plt

        masking_report.plot_method_figure(pd.read_csv(self.first["dir"] / "method_figure.csv"))
        plt.suptitle(f"{self.source}, one sampled window, ranking: {self.first.ranking}", y=1.02, fontsize=10)
        return plt.gcf()

    def answer(self) -> str:
        main = self.summary[self.summary.ranking == self.main_ranking].set_index("variant")
        invariance = self.invariance[self.invariance.ranking == self.main_ranking]
        lines = []
        if {"random", "genemask"} <= set(main.index):
            r, g = main.loc["random"], main.loc["genemask"]
            lines.append(f"Token-lookup GeneMask masks {100 * g.masked_fraction_mean:.1f} % of tokens (random: "
                         f"{100 * r.masked_fraction_mean:.1f} %) and its masked tokens rank {g.mean_rank_masked:.0f} on average against "
                         f"{g.mean_rank_unmasked:.0f} for the unmasked ones (random: {r.mean_rank_masked:.0f} vs {r.mean_rank_unmasked:.0f}); "
                         f"{100 * g.fully_hidden_share:.0f} % of its masked tokens are fully hidden, against {100 * r.fully_hidden_share:.0f} % for random masking.")
        if "genemask-position-v1" in main.index:
            v1 = main.loc["genemask-position-v1"]
            lines.append(f"The released v1 code (position lookup, stale loop variable) masks only {100 * v1.masked_fraction_mean:.1f} % and adds "
                         f"{v1.anchors_per_sequence:.0f} whole-6-mer span per sequence; its masked tokens rank like the unmasked ones "
                         f"({v1.mean_rank_masked:.0f} vs {v1.mean_rank_unmasked:.0f}): it behaves as random span masking.")
        pos = invariance[invariance.variant.str.contains("position")]
        tok = invariance[~invariance.variant.str.contains("position")]
        if len(pos) and len(tok):
            lines.append(f"With position lookup {100 * pos.sequences_with_identical_anchors.min():.0f} % or more of the sequences get the same anchors "
                         f"whatever their content; with token lookup at most {100 * tok.sequences_with_identical_anchors.max():.1f} % do.")
        if "global" in main.index:
            gl = main.loc["global"]
            lines.append(f"Global masking reaches only {100 * gl.masked_fraction_mean:.1f} %: the best-ranked 6-mers of a sequence cluster, "
                         "so their 11-token spans overlap.")
        return " ".join(lines)
