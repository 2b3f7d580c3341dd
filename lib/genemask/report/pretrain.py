"""03_pretrain: loss and validation perplexity per masking strategy, with the CM-GEMS switch."""
from __future__ import annotations

import json
from pathlib import Path

# The step log's stored form lives with the grid's collection rule; the notebooks and the book call
# it here, as report.pretrain.<name>.
from ..steplog import METRICS_FILE, RESULT_LOG_ROWS, compact_log, compact_log_text, eval_rows, log_block  # noqa: F401


def switch_step(metrics) -> int | None:
    """The evaluation step after which a plateau curriculum switched: the last step before the first
    batch of its second phase, for runs masked with GeneMask and Global only — CM-GEMS (GeneMask,
    then Global) and its reverse (Global, then GeneMask); None when it never switched."""
    phases = metrics["phase"].tolist()
    if not phases or set(phases) != {"genemask", "global"}:
        return None
    second = "global" if phases[0] == "genemask" else "genemask"
    return int(metrics["step"].iloc[phases.index(second) - 1])


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
    ``report.results.stage_results`` frame of pretraining cells. ``run`` is the method's display label
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


def run_table(summaries):
    """The pretraining chapter's table of :func:`load_cells` summaries: one row per run with steps, final
    loss, validation perplexity, masked %, the CM-GEMS switch step (blank: never) and seconds per 100 steps."""
    import pandas as pd

    table = summaries.set_index("run").assign(**{
        "masked %": (100 * summaries.set_index("run").masked_fraction).round(1),
        "switch": summaries.set_index("run").switch_step.map(lambda s: "" if pd.isna(s) else str(int(s))),
    }).rename(columns={"final_loss": "loss", "final_val_perplexity": "val. ppl", "seconds_per_100_steps": "s / 100 steps"})
    return table[["steps", "loss", "val. ppl", "masked %", "switch", "s / 100 steps"]].round(
        {"loss": 3, "val. ppl": 0, "s / 100 steps": 1})


def read_summary(out_dir) -> dict:
    path = Path(out_dir) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}
