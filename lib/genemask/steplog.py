"""A pretraining step log (``metrics.csv``) as ``results/`` keeps it: one home for the rule that grid
collection, ``grid --migrate`` and the GPU unit runner apply, and the book reads back.

A pretraining run writes a row per optimizer step to ``runs/``; a log longer than
:data:`RESULT_LOG_ROWS` reaches ``results/`` as one row per block of steps, every evaluation exact.
"""
from __future__ import annotations

import math


def eval_rows(metrics):
    """The rows with a validation perplexity (one per evaluation)."""
    return metrics[metrics["val_perplexity"].notna()]


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
