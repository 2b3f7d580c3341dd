"""04_fewshot and 05_gue: summaries over seeds, the metric-vs-shots figure, and the GUE table with the
DNABERT-2 paper's published rows beside ours."""
from __future__ import annotations

import numpy as np
import pandas as pd

#: GUE tasks in the column order of DNABERT-2's Table 4 (the "GUE layout").
GUE_LAYOUT: tuple[str, ...] = (
    "EMP/H3", "EMP/H3K14ac", "EMP/H3K36me3", "EMP/H3K4me1", "EMP/H3K4me2", "EMP/H3K4me3", "EMP/H3K79me3",
    "EMP/H3K9ac", "EMP/H4", "EMP/H4ac", "prom/prom_300_all", "prom/prom_300_notata", "prom/prom_300_tata",
    "tf/0", "tf/1", "tf/2", "tf/3", "tf/4", "prom/prom_core_all", "prom/prom_core_notata", "prom/prom_core_tata",
    "mouse/0", "mouse/1", "mouse/2", "mouse/3", "mouse/4", "virus/covid", "splice/reconstructed",
)

QUOTED_SUFFIX = " [quoted: DNABERT-2 paper]"


def published_gue() -> pd.DataFrame:
    """The DNABERT-2 paper's GUE rows (models × tasks in the GUE layout, MCC × 100; covid F1 × 100),
    quoted in ``genemask/published/values.csv`` (paper ``DNABERT-2``, table ``T4``); never recomputed.
    "+GUE": DNABERT-2 further pretrained on GUE's training sets."""
    from .. import published

    rows = published.values("DNABERT-2", "T4")
    table = rows.pivot(index="model", columns="dataset", values="value")
    return table.reindex(index=list(dict.fromkeys(rows["model"])), columns=list(GUE_LAYOUT)).rename_axis(index="model", columns=None)


def mean_interval(values) -> dict[str, float]:
    """n, mean, sd and the 95 % t-interval of the finite values (bounds NaN below two values)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    mean = float(v.mean()) if n else float("nan")
    sd = float(v.std(ddof=1)) if n > 1 else float("nan")
    half = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "sd": sd, "ci95_low": mean - half, "ci95_high": mean + half}


def summarize(results: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, sd, n and a 95 % t-interval over seeds for each group of a tidy result frame."""
    keys = [*by, "metric"]
    return results.groupby(keys, sort=True)["value"].apply(lambda v: pd.Series(mean_interval(v))).unstack().reset_index()


def fewshot_table(summary: pd.DataFrame, metric: str = "mcc") -> pd.DataFrame:
    """models × (dataset, shot) of ``mean ± sd`` for one metric, the papers' few-shot table layout."""
    part = summary[summary.metric == metric].copy()
    part["cell"] = [f"{m:.3f} ± {s:.3f}" if np.isfinite(s) else f"{m:.3f}" for m, s in zip(part["mean"], part["sd"])]
    table = part.pivot(index="model", columns=["dataset", "shot"], values="cell")
    return table.sort_index(axis=1)


def plot_metric_vs_shots(summary: pd.DataFrame, metric: str = "mcc", ax_width: float = 3.4):
    """One panel per dataset: mean metric vs shots per class (log axis), 95 % intervals as bands."""
    import matplotlib.pyplot as plt

    part = summary[summary.metric == metric]
    datasets = list(dict.fromkeys(part["dataset"]))
    fig, axes = plt.subplots(1, max(len(datasets), 1), figsize=(ax_width * max(len(datasets), 1), 3.2),
                             squeeze=False, sharey=True)
    for ax, dataset in zip(axes[0], datasets):
        for model, rows in part[part.dataset == dataset].groupby("model", sort=True):
            rows = rows.sort_values("shot")
            line, = ax.plot(rows["shot"], rows["mean"], marker="o", label=model)
            ok = np.isfinite(rows["ci95_low"])
            ax.fill_between(rows["shot"][ok], rows["ci95_low"][ok], rows["ci95_high"][ok], alpha=0.2, color=line.get_color())
        ax.set(xscale="log", title=dataset, xlabel="shots per class")
        ax.set_xticks(sorted(part[part.dataset == dataset]["shot"].unique()))
        ax.get_xaxis().set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
        ax.minorticks_off()
    axes[0][0].set_ylabel({"mcc": "MCC", "f1": "macro-F1", "auc": "AUC", "accuracy": "accuracy"}.get(metric, metric))
    axes[0][0].set_ylim(-1.05 if metric == "mcc" else -0.05, 1.05)  # the metric's range; wide t-bands (few seeds) are cut
    axes[0][-1].legend(fontsize="small", loc="best")
    fig.tight_layout()
    return fig


def gue_scores(results: pd.DataFrame) -> pd.DataFrame:
    """Our GUE score per model and task as the paper reports it: MCC × 100 (covid: macro-F1 × 100),
    mean over seeds, with the seed count and sd."""
    wanted = np.where(results["task"] == "virus/covid", "f1", "mcc")
    part = results[results["metric"] == wanted]
    grouped = part.groupby(["model", "task"])["value"]
    out = pd.DataFrame({"score": grouped.mean() * 100, "sd": grouped.std(ddof=1) * 100, "seeds": grouped.size()})
    return out.reset_index()


def gue_table(results: pd.DataFrame, quoted: bool = True) -> pd.DataFrame:
    """Models × tasks in the GUE layout: our rows (MCC × 100, covid F1 × 100, mean over seeds) and, for the
    tasks we ran that GUE publishes, the DNABERT-2 paper's rows marked as quoted. Tasks outside GUE
    (the demo tasks) follow the GUE ones."""
    ours = gue_scores(results).pivot(index="model", columns="task", values="score")
    columns = [t for t in GUE_LAYOUT if t in ours.columns] + sorted(c for c in ours.columns if c not in GUE_LAYOUT)
    table = ours.reindex(columns=columns)
    published_columns = [c for c in columns if c in GUE_LAYOUT]
    if quoted and published_columns:
        paper = published_gue()[published_columns].reindex(columns=columns)
        paper.index = [m + QUOTED_SUFFIX for m in paper.index]
        table = pd.concat([table, paper])
    table.index.name = "model"
    table.columns.name = "task"
    return table


PROBE_NOTE = (
    "**Protocol: linear probe.** These runs do not fine-tune the model: each checkpoint's encoder is frozen, "
    "every sequence becomes the mean of its last hidden states, and a logistic regression (scikit-learn, "
    "standardized features, C = 1) is fit on the training examples and scored once on test. On 2 CPU cores the "
    "papers' fine-tuning of every checkpoint would take days (README, *Profiles*); the probe asks what "
    "pretraining put into the representation, which is the question both papers' claims rest on.")


def protocol_note(runs: pd.DataFrame | None) -> str | None:
    """The sentence a chapter shows when its runs used the linear probe instead of fine-tuning."""
    if runs is not None and "protocol" in runs and (runs["protocol"] == "probe").any():
        return PROBE_NOTE
    return None


def constant_predictions(runs: pd.DataFrame, by: str = "method") -> pd.DataFrame:
    """Per ``by`` value: fine-tuning runs, how many predicted one class for every test row (a
    degenerate run: MCC 0 whatever the data), and their share. Reported, never dropped."""
    if "constant_predictions" not in runs:
        raise ValueError("runs: no constant_predictions column (run tables written before it existed)")
    flags = runs["constant_predictions"].astype("boolean")
    frame = runs.assign(constant=flags).groupby(by, sort=True).agg(runs=("constant", "size"), constant=("constant", "sum"))
    return frame.assign(constant=frame["constant"].astype(int), share=frame["constant"] / frame["runs"]).reset_index()


def learning_rate_pilot(results: pd.DataFrame, runs: pd.DataFrame, metric: str = "mcc") -> tuple[pd.DataFrame, float]:
    """The fine-tuning learning-rate pilot: per checkpoint (``method``) and over all of them, each
    learning rate's mean ``metric`` on held-out training-pool rows, its runs and constant-prediction
    runs; and the rate chosen, the best mean over all. Refuses runs scored on a test set: a budget
    chosen by test score would leak the test set into the protocol."""
    if "scored_on" not in runs or (runs["scored_on"] != "validation").any():
        raise ValueError("learning-rate pilot: every run must be scored on validation rows (scored_on), not the test set")
    keys = ["cell", "dataset", "shot", "seed"]
    scores = results[results["metric"] == metric].merge(
        runs[[*keys, "learning_rate", "constant_predictions"]], on=keys, how="inner", validate="one_to_one")
    if scores.empty:
        raise ValueError(f"learning-rate pilot: no {metric} rows match the run table")
    scores["constant_predictions"] = scores["constant_predictions"].astype(bool)
    parts = [scores, scores.assign(method="all")]
    table = (pd.concat(parts).groupby(["method", "learning_rate"], sort=True)
             .agg(mean=("value", "mean"), runs=("value", "size"), constant=("constant_predictions", "sum")).reset_index())
    overall = table[table["method"] == "all"]
    return table, float(overall.loc[overall["mean"].idxmax(), "learning_rate"])
