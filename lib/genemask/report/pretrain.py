"""03_pretrain: loss and validation perplexity per masking strategy, with the CM-GEMS switch."""
from __future__ import annotations

import json
import math
from pathlib import Path


def eval_rows(metrics):
    """The rows with a validation perplexity (one per evaluation)."""
    return metrics[metrics["val_perplexity"].notna()]


def switch_step(metrics) -> int | None:
    """The evaluation step after which CM-GEMS masks with Global: the last step before the first
    Global batch, for runs that start with GeneMask masking (None when it never switched)."""
    phases = metrics["phase"].tolist()
    if not phases or phases[0] != "genemask" or "global" not in phases:
        return None
    return int(metrics["step"].iloc[phases.index("global") - 1])


#: The pretraining step log notebook 03 writes (``pretrain.run``: a row per optimizer step).
METRICS_FILE = "metrics.csv"
#: Rows a pretraining log keeps in results/: a longer run's log is stored by ``compact_log`` (its
#: per-step log stays in runs/). 2,000 rows are ~120 KB; a 16K-step log has 1 MB of per-step rows.
RESULT_LOG_ROWS = 2_000
#: Columns a stored row aggregates over its block of steps (how, digits kept as the log keeps
#: them); every other column is its value at the block's last step.
_BLOCK_AGGREGATES = {"loss": ("mean", 6), "masked_fraction": ("mean", 5), "tokens": ("sum", 0),
                     "data_seconds": ("sum", 3)}


def log_block(metrics, max_rows: int = RESULT_LOG_ROWS) -> int:
    """Steps per stored row: 1 when the log fits in ``max_rows``, else the smallest divisor of the
    evaluation interval that fits, so that every evaluation ends a block."""
    steps = len(metrics)
    if steps <= max_rows:
        return 1
    evals = eval_rows(metrics)["step"]
    interval = int(evals.diff().dropna().min()) if len(evals) > 1 else steps
    for block in range(2, interval + 1):
        if interval % block == 0 and math.ceil(steps / block) <= max_rows:
            return block
    return interval  # even one row per evaluation is more: the evaluations are kept


def compact_log(metrics, max_rows: int = RESULT_LOG_ROWS):
    """A long step log as results/ stores it: one row per block of ``log_block`` steps, with the
    block's mean training loss and masked fraction, its tokens and data seconds summed, and the rest
    (step, lr, evaluations, phase, seconds) as at its last step. Evaluations stay exact, and so do
    ``summary`` (the last tenth of the steps is the last tenth of the blocks), ``switch_step`` and
    the tokens seen; a training-loss curve is one of block means."""
    block = log_block(metrics, max_rows)
    if block == 1:
        return metrics
    groups = metrics.groupby((metrics["step"] - 1) // block)  # keys in step order, as tail(1)'s rows
    out = groups.tail(1).reset_index(drop=True)
    for column, (how, digits) in _BLOCK_AGGREGATES.items():
        if column in metrics:
            out[column] = groups[column].agg(how).round(digits).to_numpy()
    return out


def compact_log_text(text: str, max_rows: int = RESULT_LOG_ROWS) -> str:
    """``compact_log`` of a metrics.csv's text; a log that fits comes back unchanged, byte for byte."""
    import io

    import pandas as pd

    metrics = pd.read_csv(io.StringIO(text))
    if log_block(metrics, max_rows) == 1:
        return text
    return compact_log(metrics, max_rows).to_csv(index=False)


def summary(metrics, label: str = "") -> dict:
    """One line per run: final loss (mean of the last 10 % of steps), final and best validation
    perplexity, mean masked fraction, CM-GEMS switch step, seconds per 100 steps."""
    tail = metrics.tail(max(1, len(metrics) // 10))
    evals = eval_rows(metrics)
    steps = int(metrics["step"].iloc[-1])
    return {
        "run": label,
        "steps": steps,
        "final_loss": float(tail["loss"].mean()),
        "final_val_perplexity": float(evals["val_perplexity"].iloc[-1]) if len(evals) else float("nan"),
        "best_val_perplexity": float(evals["val_perplexity"].min()) if len(evals) else float("nan"),
        "masked_fraction": float(metrics["masked_fraction"].mean()),
        "switch_step": switch_step(metrics),
        "seconds_per_100_steps": 100 * float(metrics["seconds"].iloc[-1]) / steps,
    }


def load_cells(cells):
    """(metrics of every collected cell with a ``run`` label, one summary row per run) from a
    ``report.stage_results`` frame of pretraining cells. ``run`` is the method's display label
    (``genemask@1000:logo``, :meth:`genemask.identity.RunIdentity.label`), with the pretraining
    seed added where several seeds of a method are shown; both frames carry the identity columns
    (``pretrain_strategy``, ``pretrain_seed``, ...) and ``method`` to select runs by."""
    import pandas as pd

    from ..identity import RunIdentity

    identities = [RunIdentity.from_config(row) for row in cells.to_dict("records")]
    methods = [i.label() for i in identities]
    frames, rows = [], []
    for cell, identity, method in zip(cells.itertuples(), identities, methods):
        path = Path(cell.dir) / "metrics.csv"
        if not path.exists():
            continue
        label = f"{method} seed {identity.seed}" if methods.count(method) > 1 else method
        metrics = pd.read_csv(path).assign(run=label, method=method, pretrain_seed=identity.seed)
        frames.append(metrics)
        rows.append({**summary(metrics, label), "method": method, **identity.columns()})
    if not frames:
        return None, None
    return pd.concat(frames, ignore_index=True), pd.DataFrame(rows)


def plot_curves(metrics, axes=None, smooth: int = 25):
    """Training loss (rolling mean over ``smooth`` steps) and validation perplexity per run; a
    dotted line marks each CM-GEMS switch."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4))
    if "run" not in metrics:
        metrics = metrics.assign(run="run")
    runs = list(dict.fromkeys(metrics["run"]))
    palette = dict(zip(runs, sns.color_palette("tab10", len(runs))))
    for run in runs:
        m = metrics[metrics["run"] == run]
        axes[0].plot(m["step"], m["loss"].rolling(smooth, min_periods=1).mean(), label=run, color=palette[run], lw=1.2)
        e = eval_rows(m)
        axes[1].plot(e["step"], e["val_perplexity"], marker=".", label=run, color=palette[run], lw=1.2)
        switched = switch_step(m)
        if switched is not None:
            for ax in axes:
                ax.axvline(switched, color=palette[run], ls=":", lw=1.5)
            axes[1].annotate(f"switch → Global\n(step {switched})", (switched, float(e["val_perplexity"].max())),
                             fontsize=8, color=palette[run], ha="left", va="top", xytext=(4, 0), textcoords="offset points")
    axes[0].set(xlabel="step", ylabel=f"training loss (mean of {smooth} steps)")
    axes[1].set(xlabel="step", ylabel="validation perplexity", yscale="log")
    axes[1].legend(fontsize=8, loc="lower left")
    return axes


def read_summary(out_dir) -> dict:
    path = Path(out_dir) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}
