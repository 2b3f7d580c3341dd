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

#: DNABERT-2's published GUE Table 4 (MCC × 100; covid F1 × 100), transcribed in reference/papers.md §3.3
#: from the repository's figures/Performance.png. "+GUE": DNABERT-2 further pretrained on GUE's
#: training sets. Quoted, never recomputed.
_PUBLISHED = (
    ("DNABERT (3-mer)", "74.15 42.07 48.49 42.95 31.34 28.92 60.12 50.48 78.27 38.60 90.44 93.61 69.83 67.95 70.90 60.51 53.03 69.76 70.92 69.82 78.15 42.31 79.10 69.90 55.40 41.97 62.23 84.14"),
    ("DNABERT (4-mer)", "73.03 41.88 48.03 41.06 30.66 25.31 59.77 51.44 78.28 36.40 89.54 92.65 66.78 67.90 73.05 59.52 50.37 71.23 69.00 70.04 74.25 49.42 79.95 72.62 51.79 44.13 59.87 84.05"),
    ("DNABERT (5-mer)", "73.40 40.68 48.29 40.65 30.67 27.10 59.61 51.11 77.27 37.48 90.16 92.45 69.51 66.97 69.98 59.03 52.95 69.26 69.48 69.81 76.79 42.45 79.32 62.22 49.92 40.34 50.46 84.02"),
    ("DNABERT (6-mer)", "73.10 40.06 47.25 41.44 32.27 27.81 61.17 51.22 79.26 37.43 90.48 93.05 61.56 66.84 70.14 61.03 51.89 70.97 68.90 70.47 76.06 44.42 78.94 71.44 44.89 42.48 55.50 84.07"),
    ("NT-500M-human", "69.67 33.55 44.14 37.15 30.87 24.06 58.35 45.81 76.17 33.74 87.71 90.75 78.07 61.59 66.75 53.58 42.95 60.81 63.45 64.82 71.34 31.04 75.04 61.67 29.17 29.27 50.82 79.71"),
    ("NT-500M-1000g", "72.52 39.37 45.58 40.45 31.05 26.16 59.33 49.29 76.29 36.79 89.76 91.75 78.23 63.64 70.17 52.73 45.24 62.82 66.70 67.17 73.52 39.26 75.49 64.70 33.07 34.01 52.06 80.97"),
    ("NT-2500M-1000g", "74.61 44.08 50.86 43.10 30.28 30.87 61.20 52.36 79.76 41.46 90.95 93.07 75.80 66.31 68.30 58.70 49.08 67.59 67.39 67.46 69.66 48.31 80.02 70.14 42.25 43.40 66.73 85.78"),
    ("NT-2500M-multi", "78.77 56.20 61.99 55.30 36.49 40.34 64.70 56.01 81.67 49.13 91.01 94.00 79.43 66.64 70.28 58.72 51.65 69.34 70.33 71.58 72.97 63.31 83.76 71.52 69.44 47.07 73.04 89.35"),
    ("DNABERT-2", "78.27 52.57 56.88 50.52 31.13 36.27 67.39 55.63 80.71 50.43 86.77 94.27 71.59 71.99 76.06 66.52 58.54 77.43 69.37 68.04 74.17 56.76 84.77 79.32 66.47 52.66 71.02 84.99"),
    ("DNABERT-2+GUE", "80.17 57.42 61.90 53.00 39.89 41.20 65.46 57.07 81.86 50.35 88.31 94.34 68.79 69.12 71.87 62.96 55.35 74.94 67.50 69.53 76.18 64.23 86.28 81.28 73.49 50.80 68.49 85.93"),
)
QUOTED_SUFFIX = " [quoted: DNABERT-2 paper]"


def published_gue() -> pd.DataFrame:
    """The DNABERT-2 paper's GUE rows (models × tasks in the GUE layout, MCC × 100; covid F1 × 100)."""
    return pd.DataFrame([[float(v) for v in values.split()] for _, values in _PUBLISHED],
                        index=pd.Index([m for m, _ in _PUBLISHED], name="model"), columns=list(GUE_LAYOUT))


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
