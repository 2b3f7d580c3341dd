"""The pretraining chapter: each run's curves and summary, at the scale they ran."""
from __future__ import annotations

from ..results import book_profile, stage_results
from .. import pretrain as pretrain_report

#: The papers' own pretraining, for the scale line.
PAPERS_SCALE = "The papers pretrained DNABERT (BERT-base) for 10K steps of 250 sequences of 512 tokens."


class Chapter:
    """The pretraining chapter for one profile, its step logs and summaries read once."""

    def __init__(self, profile: str | None = None):
        self.profile = profile = profile or book_profile()
        self.cells = stage_results("pretrain", profile)[1]
        self.metrics = self.summaries = None
        if self.cells is not None:
            self.metrics, self.summaries = pretrain_report.load_cells(self.cells)

    def scale(self) -> str:
        if self.metrics is None:
            return (f"**No pretraining results for profile `{self.profile}` yet.** Run `make reproduce` (demo) or "
                    f"`make grid PROFILE={self.profile}` to train them; this chapter then shows their curves.")
        cells = self.cells
        size = ", ".join(f"{c} {', '.join(map(str, sorted(cells[c].dropna().unique())))}"
                         for c in ("model", "steps", "batch_size", "max_len") if c in cells.columns)
        return (f"**Scale of these results** — profile `{self.profile}`: {len(self.summaries)} run(s); "
                f"{size or 'notebook defaults'}. {PAPERS_SCALE}")

    def compared_runs(self) -> list[str]:
        """The strategy comparison: the runs at the largest budget with default masking options (the
        masking-rate runs, at other budgets or a doubled rate, have their own chapter)."""
        summaries = self.summaries
        longest = summaries.pretrain_steps.max()
        return summaries[(summaries.pretrain_steps == longest) & (summaries.pretrain_masking_options == "{}")].run.tolist()

    def curves(self) -> list:
        """(a sentence when some runs are left out, the figure of the compared runs' curves)."""
        if self.metrics is None:
            return []
        import matplotlib.pyplot as plt

        compared = self.compared_runs()
        out = []
        if len(compared) < len(self.summaries):
            out.append(f"Curves of the {len(compared)} runs of {self.summaries.pretrain_steps.max()} steps with each "
                       "strategy's default masking rate; every run is in the summary below, and the masking-rate "
                       "runs in *Doubling the masking rate*.")
        figure, axes = plt.subplots(1, 2, figsize=(11, 4))
        pretrain_report.plot_curves(self.metrics[self.metrics.run.isin(compared)] if compared else self.metrics, axes)
        figure.tight_layout()
        return out + [figure]

    def table(self):
        return None if self.summaries is None else pretrain_report.run_table(self.summaries)
