"""The book's headline numbers: few-shot metric per model with 95 % intervals over seeds, paired
comparisons of two models on the same (dataset, shots, seed) runs, and the CPU time a profile took.

Seeds are the unit of replication: a model's score for one seed is its mean over the datasets and
shots asked for, so the interval says how much the answer would move with another set of seeds.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .downstream import mean_interval


def _t_interval(values) -> tuple[float, float, float]:
    """(mean, low, high) of a 95 % t-interval; the bounds are NaN for fewer than two values."""
    stats = mean_interval(values)
    return stats["mean"], stats["ci95_low"], stats["ci95_high"]


def seed_scores(results: pd.DataFrame, metric: str = "mcc", by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Per model (and ``by``) and seed: the metric averaged over everything else (datasets, shots)."""
    part = results[results.metric == metric]
    if part.empty:
        raise ValueError(f"metric {metric!r}: no such rows; metrics are {sorted(results.metric.unique())}")
    return part.groupby(["model", *by, "seed"], sort=True)["value"].mean().reset_index()


def headline_table(results: pd.DataFrame, metric: str = "mcc", column: str = "dataset",
                   digits: int = 3) -> pd.DataFrame:
    """Models × (each ``column`` value, then ``all``) of ``mean ± half-width of the 95 % CI`` over
    seeds, best first (a single seed gives the mean alone)."""
    per_column = seed_scores(results, metric, (column,))
    overall = seed_scores(results, metric).assign(**{column: "all"})
    frame = pd.concat([per_column, overall], ignore_index=True)
    rows = []
    for (model, key), group in frame.groupby(["model", column], sort=False):
        mean, low, high = _t_interval(group["value"].to_numpy())
        rows.append({"model": model, column: key, "mean": mean, "ci95_low": low, "ci95_high": high, "seeds": len(group)})
    stats = pd.DataFrame(rows)
    stats["cell"] = [f"{m:.{digits}f} ± {(hi - lo) / 2:.{digits}f}" if np.isfinite(lo) else f"{m:.{digits}f}"
                     for m, lo, hi in zip(stats["mean"], stats["ci95_low"], stats["ci95_high"])]
    order = stats[stats[column] == "all"].sort_values("mean", ascending=False)["model"].tolist()
    columns = [*results[column].drop_duplicates(), "all"]
    table = stats.pivot(index="model", columns=column, values="cell").loc[order, columns]
    table.columns.name = None
    return table


def paired_comparison(results: pd.DataFrame, model: str, baseline: str, metric: str = "mcc",
                      keys: tuple[str, ...] = ("dataset", "shot", "seed")) -> dict:
    """``model`` minus ``baseline`` on the runs both have (same dataset, shots and seed).

    Returns the mean difference with a 95 % t-interval over seeds (each seed's mean difference), the
    runs won / lost / tied, and a two-sided Wilcoxon signed-rank p over all paired runs.
    """
    from scipy import stats

    part = results[results.metric == metric]
    missing = {model, baseline} - set(part.model)
    if missing:
        raise ValueError(f"paired_comparison: no {metric} results for {sorted(missing)}; models are {sorted(part.model.unique())}")
    wide = part[part.model.isin([model, baseline])].pivot_table(index=list(keys), columns="model", values="value")
    wide = wide.dropna()
    if wide.empty:
        raise ValueError(f"paired_comparison: {model!r} and {baseline!r} share no ({', '.join(keys)}) run")
    diff = (wide[model] - wide[baseline]).rename("difference")
    per_seed = diff.groupby(level="seed").mean().to_numpy() if "seed" in keys else diff.to_numpy()
    mean, low, high = _t_interval(per_seed)
    nonzero = diff[diff != 0]
    p = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else float("nan")
    return {"model": model, "baseline": baseline, "metric": metric, "pairs": int(len(diff)),
            "mean_difference": mean, "ci95_low": low, "ci95_high": high,
            "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()), "ties": int((diff == 0).sum()),
            "wilcoxon_p": p}


def compute_seconds(results_root: str | Path) -> pd.DataFrame:
    """Seconds of one CPU core per stage cell, from what each run recorded: the pretraining loop's
    clock (``metrics.csv``, evaluations included) and the few-shot / GUE run tables (``seconds`` per
    run). Cells ran on one thread each, so wall seconds are core seconds."""
    root = Path(results_root)
    rows = []
    for metrics in sorted(root.glob("pretrain/*/metrics.csv")):
        seconds = pd.read_csv(metrics, usecols=["seconds"])["seconds"]
        rows.append({"stage": "pretrain", "cell": metrics.parent.name, "seconds": float(seconds.max()) if len(seconds) else 0.0})
    for stage_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for runs in sorted(stage_dir.glob("*/*_runs.csv")):
            frame = pd.read_csv(runs)
            if "seconds" in frame:
                rows.append({"stage": stage_dir.name, "cell": runs.parent.name, "seconds": float(frame["seconds"].sum())})
    return pd.DataFrame(rows, columns=["stage", "cell", "seconds"])


_RUN_NAME = re.compile(r"(?P<strategy>[\w-]+)(?:\[(?P<tags>[^\]]*)\])?(?:@(?P<steps>\d+))?(?::(?P<size>\w+))?")


def parse_run_name(name: str) -> dict:
    """The parts of a run name written by :func:`genemask.finetune.run_name`:
    ``genemask[p=0.05]@250:logo`` → strategy, tags (a list), steps (int or None), size."""
    match = _RUN_NAME.fullmatch(str(name))
    if match is None:
        raise ValueError(f"{name!r} is not a run name (strategy[tags]@steps:size)")
    tags = [t for t in (match.group("tags") or "").split(",") if t]
    steps = match.group("steps")
    return {"strategy": match.group("strategy"), "tags": tags, "steps": int(steps) if steps else None,
            "size": match.group("size")}


def rate_effect(results: pd.DataFrame, strategy: str = "genemask", doubled_tag: str = "p=0.05",
                metric: str = "mcc") -> pd.DataFrame:
    """The masking-rate pairs of ``strategy`` at each pretraining budget: mean metric with a 95 %
    interval over seeds for the default and the ``doubled_tag`` rate, and the paired difference.
    Rows only for budgets that have both rates."""
    names = {m: parse_run_name(m) for m in results.model.unique() if _RUN_NAME.fullmatch(str(m))}
    single = {p["steps"]: m for m, p in names.items() if p["strategy"] == strategy and not p["tags"]}
    double = {p["steps"]: m for m, p in names.items() if p["strategy"] == strategy and p["tags"] == [doubled_tag]}
    rows = []
    for steps in sorted(set(single) & set(double) - {None}):
        both = results[results.model.isin([single[steps], double[steps]])]
        scores = seed_scores(both, metric)
        diff = paired_comparison(both, double[steps], single[steps], metric)  # pairs only the runs both have
        row = {"steps": steps}
        for label, model in (("default", single[steps]), ("doubled", double[steps])):
            mean, low, high = _t_interval(scores[scores.model == model]["value"].to_numpy())
            row.update({f"{label}_model": model, f"{label}_mean": mean, f"{label}_ci95_low": low, f"{label}_ci95_high": high})
        row.update({key: diff[key] for key in ("pairs", "mean_difference", "ci95_low", "ci95_high", "wins", "losses", "wilcoxon_p")})
        rows.append(row)
    return pd.DataFrame(rows)
