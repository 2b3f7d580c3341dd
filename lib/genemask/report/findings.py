"""The book's verdicts: few-shot scores per method with intervals that resample pretraining runs,
paired contrasts of two methods, the pretraining-seed noise floor, and the CPU time a profile took.

**The unit of replication is the pretraining run.** A method (a :class:`~genemask.identity.RunIdentity`
without its seed) is trained under several pretraining seeds; each checkpoint is evaluated on every
(dataset, shots) stratum under several downstream seeds, which draw the few-shot training sets (the
same sets for every checkpoint). Intervals come from a two-level bootstrap, MultiBERTs' "multi-bootstrap"
(Sellam et al. 2022): each replicate redraws the pretraining seeds of each method and, within each
stratum, the downstream seeds, and recomputes the score. With one pretraining seed the interval
only covers downstream noise, and a contrast says so instead of giving a verdict.

Input frames are the tidy downstream results of :func:`genemask.report.runs.downstream`: columns
``method`` (a label computed from the identity columns), ``pretrain_seed``, ``dataset``, ``shot``,
``seed`` (downstream), ``metric``, ``value``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import store

#: Bootstrap replicates for every interval (the book's intervals are reproducible: seeded draws).
N_BOOT = 4000
STRATA = ("dataset", "shot")

#: The fixed words a contrast's verdict is given in.
VERDICTS = ("better", "worse", "no difference detected", "one pretraining run: no verdict")


def score_tensor(results: pd.DataFrame, method: str, metric: str = "mcc",
                 strata: tuple[str, ...] = STRATA) -> pd.DataFrame:
    """One method's scores as a frame indexed by pretraining seed, with columns (stratum..., seed)."""
    part = results[(results["metric"] == metric) & (results["method"] == method)]
    if part.empty:
        known = sorted(results.loc[results["metric"] == metric, "method"].unique())
        if not known:
            raise ValueError(f"metric {metric!r}: no such rows; metrics are {sorted(results['metric'].unique())}")
        raise ValueError(f"method {method!r}: no {metric} results; methods are {known}")
    return part.pivot_table(index="pretrain_seed", columns=[*strata, "seed"], values="value", aggfunc="mean")


def _complete(*tensors: pd.DataFrame) -> list[np.ndarray]:
    """The (stratum, seed) columns every pretraining seed of every method has, as arrays shaped
    (pretraining seeds, strata, downstream seeds); strata keep the seeds all of them share."""
    columns = tensors[0].columns
    for t in tensors[1:]:
        columns = columns.intersection(t.columns)
    frames = [t[columns].dropna(axis=1) for t in tensors]
    columns = frames[0].columns
    for f in frames[1:]:
        columns = columns.intersection(f.columns)
    if len(columns) == 0:
        raise ValueError("no (dataset, shots, seed) run is shared by every pretraining seed of the methods compared")
    strata = columns.droplevel(-1).unique()
    seeds = sorted(set.intersection(*(set(columns[columns.droplevel(-1) == s].get_level_values(-1)) for s in strata)))
    keep = pd.MultiIndex.from_tuples([(*((s,) if not isinstance(s, tuple) else s), d) for s in strata for d in seeds])
    return [f.reindex(columns=keep).to_numpy().reshape(len(f), len(strata), len(seeds)) for f in frames]


def _draws(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Bootstrap counts: how often each of ``size`` units is drawn in each of ``n`` replicates."""
    picks = rng.integers(0, size, (n, size)) + size * np.arange(n)[:, None]
    return np.bincount(picks.ravel(), minlength=n * size).reshape(n, size)


def _replicates(tensor: np.ndarray, pretrain_counts: np.ndarray, seed_counts: np.ndarray) -> np.ndarray:
    """The mean score of each bootstrap replicate (weights: pretraining seeds × per-stratum seeds)."""
    p, s, d = tensor.shape
    return np.einsum("bi,isj,bsj->b", pretrain_counts, tensor, seed_counts) / (p * s * d)


def _interval(point: float, reps: np.ndarray) -> dict:
    low, high = np.percentile(reps, [2.5, 97.5])
    return {"mean": float(point), "ci95_low": float(low), "ci95_high": float(high)}


def method_score(results: pd.DataFrame, method: str, metric: str = "mcc", n_boot: int = N_BOOT,
                 seed: int = 0, strata: tuple[str, ...] = STRATA) -> dict:
    """A method's score (mean over pretraining seeds, strata and downstream seeds) with its two-level
    95 % bootstrap interval and the number of pretraining and downstream seeds behind it."""
    (tensor,) = _complete(score_tensor(results, method, metric, strata))
    rng = np.random.default_rng(seed)
    p, s, d = tensor.shape
    reps = _replicates(tensor, _draws(rng, n_boot, p), _draws(rng, n_boot * s, d).reshape(n_boot, s, d))
    return {"method": method, "metric": metric, **_interval(tensor.mean(), reps),
            "pretrain_seeds": p, "downstream_seeds": d, "strata": s}


def contrast(results: pd.DataFrame, a: str, b: str, metric: str = "mcc", n_boot: int = N_BOOT,
             seed: int = 0, strata: tuple[str, ...] = STRATA) -> dict:
    """``a − b`` over the runs both have, with a two-level 95 % bootstrap interval.

    Downstream seeds are paired (the same training sets for both); pretraining seeds are paired
    when both methods have the same ones (seed s shares its init and data order across strategies),
    else drawn independently. ``p_boot`` is the two-sided bootstrap p of a zero difference; the
    verdict is one of :data:`VERDICTS`.
    """
    ta, tb = score_tensor(results, a, metric, strata), score_tensor(results, b, metric, strata)
    paired = list(ta.index) == list(tb.index)
    xa, xb = _complete(ta, tb)
    rng = np.random.default_rng(seed)
    (pa, s, d), pb = xa.shape, xb.shape[0]
    seed_counts = _draws(rng, n_boot * s, d).reshape(n_boot, s, d)
    counts_a = _draws(rng, n_boot, pa)
    counts_b = counts_a if paired else _draws(rng, n_boot, pb)
    reps = _replicates(xa, counts_a, seed_counts) - _replicates(xb, counts_b, seed_counts)
    out = _interval(xa.mean() - xb.mean(), reps)
    diff = xa.mean(axis=0) - xb.mean(axis=0)  # per (stratum, downstream seed), over pretraining seeds
    p_boot = float(min(1.0, 2 * min((reps <= 0).mean(), (reps >= 0).mean())))
    return {"a": a, "b": b, "metric": metric, "mean_difference": out["mean"], "ci95_low": out["ci95_low"],
            "ci95_high": out["ci95_high"], "p_boot": p_boot, "pretrain_seeds_a": pa, "pretrain_seeds_b": pb,
            "paired_pretraining": paired, "downstream_seeds": d, "strata": s,
            "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()), "ties": int((diff == 0).sum()),
            "verdict": verdict(out["ci95_low"], out["ci95_high"], min(pa, pb))}


def verdict(ci95_low: float, ci95_high: float, pretrain_seeds: int) -> str:
    """The fixed word for an interval of ``a − b``: no verdict rests on a single pretraining run."""
    if pretrain_seeds < 2:
        return VERDICTS[3]
    if ci95_low > 0:
        return VERDICTS[0]
    if ci95_high < 0:
        return VERDICTS[1]
    return VERDICTS[2]


def contrast_table(results: pd.DataFrame, a: str, b: str, metric: str = "mcc", by: tuple[str, ...] = STRATA,
                   **kwargs) -> pd.DataFrame:
    """:func:`contrast` per value of ``by`` (each dataset and shots), then over everything (``all``)."""
    rows = []
    part = results[results["method"].isin([a, b])]
    for key, group in part.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), **contrast(group, a, b, metric, **kwargs)})
    rows.append({**{c: "all" for c in by}, **contrast(part, a, b, metric, **kwargs)})
    return pd.DataFrame(rows)


def headline_table(results: pd.DataFrame, metric: str = "mcc", column: str = "dataset",
                   digits: int = 3, n_boot: int = N_BOOT) -> pd.DataFrame:
    """Methods × (each ``column`` value, then ``all``) of ``mean ±half`` (half the width of its
    two-level 95 % bootstrap interval, one line a cell), best first, with the pretraining seeds behind
    each method."""
    from .intervals import compact

    methods = results.loc[results["metric"] == metric, "method"].unique()
    if not len(methods):
        raise ValueError(f"metric {metric!r}: no such rows; metrics are {sorted(results['metric'].unique())}")
    cells, seeds, overall = {}, {}, {}
    for method in methods:
        part = results[results["method"] == method]
        for value, group in [*part.groupby(column, sort=False), ("all", part)]:
            strata = tuple(s for s in STRATA if s != column) if value != "all" else STRATA
            stats = method_score(group, method, metric, n_boot, strata=strata)
            cells[(method, value)] = compact(stats["mean"], stats["ci95_low"], stats["ci95_high"], digits).removeprefix("+")
            if value == "all":
                overall[method], seeds[method] = stats["mean"], stats["pretrain_seeds"]
    order = sorted(methods, key=lambda m: -overall[m])
    columns = [*results[column].drop_duplicates(), "all"]
    table = pd.DataFrame([[cells.get((m, c), "") for c in columns] for m in order], index=pd.Index(order, name="method"),
                         columns=columns)
    table.insert(0, "pretraining seeds", [seeds[m] for m in order])
    return table


def by_protocol(frames: dict[str, pd.DataFrame], pairs: list[tuple[str, str]], metric: str = "mcc",
                n_boot: int = N_BOOT) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same checkpoints under several downstream protocols (``{"probe": ..., "fine-tuning": ...}``):
    each method's two-level score per protocol, and each ``(a, b)`` contrast per protocol with its
    verdict. A verdict that holds under one protocol only is a finding about the protocol, which is
    why both are shown side by side. Methods or pairs a protocol lacks are left out of its rows."""
    scores, contrasts = [], []
    for protocol, results in frames.items():
        methods = set(results.loc[results["metric"] == metric, "method"])
        for method in sorted(methods):
            stats = method_score(results, method, metric, n_boot)
            scores.append({"protocol": protocol, **{k: stats[k] for k in ("method", "mean", "ci95_low", "ci95_high",
                                                                           "pretrain_seeds", "downstream_seeds")}})
        for a, b in pairs:
            if {a, b} <= methods:
                diff = contrast(results, a, b, metric, n_boot)
                contrasts.append({"protocol": protocol, "a": a, "b": b, "mean_difference": diff["mean_difference"],
                                  "ci95_low": diff["ci95_low"], "ci95_high": diff["ci95_high"],
                                  "pretrain_seeds": min(diff["pretrain_seeds_a"], diff["pretrain_seeds_b"]),
                                  "verdict": diff["verdict"]})
    return (pd.DataFrame(scores, columns=["protocol", "method", "mean", "ci95_low", "ci95_high", "pretrain_seeds",
                                          "downstream_seeds"]),
            pd.DataFrame(contrasts, columns=["protocol", "a", "b", "mean_difference", "ci95_low", "ci95_high",
                                             "pretrain_seeds", "verdict"]))


def noise_floor(results: pd.DataFrame, metric: str = "mcc") -> pd.DataFrame:
    """Per method with several pretraining seeds: each seed's score (mean over strata and downstream
    seeds), and their sd and range — how far a method's score moves with its own pretraining seed."""
    rows = []
    for method in sorted(results.loc[results["metric"] == metric, "method"].unique()):
        (tensor,) = _complete(score_tensor(results, method, metric))
        per_seed = tensor.mean(axis=(1, 2))
        if len(per_seed) < 2:
            continue
        rows.append({"method": method, "metric": metric, "pretrain_seeds": len(per_seed),
                     "scores": [round(float(v), 4) for v in per_seed], "sd": float(per_seed.std(ddof=1)),
                     "range": float(per_seed.max() - per_seed.min())})
    return pd.DataFrame(rows, columns=["method", "metric", "pretrain_seeds", "scores", "sd", "range"])


def rate_effect(results: pd.DataFrame, strategy: str = "genemask", rate: float = 0.05,
                metric: str = "mcc") -> pd.DataFrame:
    """The masking-rate pairs of ``strategy`` at each pretraining budget: each rate's score and the
    contrast doubled − default, from the identity columns (``pretrain_masking_options``)."""
    import json

    doubled = json.dumps({"centre_probability": rate})
    if "pretrain_strategy" not in results:
        raise ValueError("rate_effect needs the identity columns of genemask.report.runs.downstream (pretrain_strategy, ...)")
    base = results[(results["pretrain_strategy"] == strategy) & (results["pretrain_ranking"] != "Data-A")]
    rows = []
    for steps, part in base.groupby("pretrain_steps", sort=True):
        default = part.loc[part["pretrain_masking_options"] == "{}", "method"].unique()
        double = part.loc[part["pretrain_masking_options"] == doubled, "method"].unique()
        if len(default) != 1 or len(double) != 1:
            continue
        row = {"steps": int(steps)}
        for label, method in (("default", default[0]), ("doubled", double[0])):
            stats = method_score(part, method, metric)
            row.update({f"{label}_method": method, f"{label}_mean": stats["mean"],
                        f"{label}_ci95_low": stats["ci95_low"], f"{label}_ci95_high": stats["ci95_high"]})
        diff = contrast(part, double[0], default[0], metric)
        row.update({k: diff[k] for k in ("mean_difference", "ci95_low", "ci95_high", "p_boot", "wins", "losses",
                                         "pretrain_seeds_a", "pretrain_seeds_b", "downstream_seeds", "verdict")})
        rows.append(row)
    return pd.DataFrame(rows)


def compute_seconds(results_root: str | Path) -> pd.DataFrame:
    """Seconds of one CPU core per stage cell. The grid's provenance records each cell's CPU time
    (``cpu_seconds``: the notebook's process tree), which is what a core spent whatever else shared
    it; cells collected before provenance was recorded fall back to their own clock, the pretraining
    loop's (``metrics.csv``, evaluations included) or the few-shot / GUE run tables' ``seconds``,
    which is wall time (it overstates CPU time when cells shared cores). ``source`` says which."""
    import json

    root = Path(results_root)
    rows = []
    for cell in sorted(p for p in root.glob("*/*") if p.is_dir()) if root.is_dir() else []:
        record = cell / store.RECORD
        cpu = json.loads(record.read_text()).get("cpu_seconds") if record.exists() else None
        if cpu is not None:
            rows.append({"stage": cell.parent.name, "cell": cell.name, "seconds": float(cpu), "source": "cpu time"})
            continue
        clock = [float(pd.read_csv(m, usecols=["seconds"])["seconds"].max()) for m in cell.glob(store.METRICS)]
        for runs in sorted(cell.glob("*_runs.csv")):
            frame = pd.read_csv(runs)
            if "seconds" in frame:
                clock.append(float(frame["seconds"].sum()))
        clock = [c for c in clock if c == c]
        if clock:
            rows.append({"stage": cell.parent.name, "cell": cell.name, "seconds": sum(clock), "source": "run clock"})
    return pd.DataFrame(rows, columns=["stage", "cell", "seconds", "source"])
