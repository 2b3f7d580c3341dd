"""A long pretraining log as results/ stores it (report.pretrain.compact_log): fewer rows, and
every number the book reads from it unchanged."""
import io

import numpy as np
import pandas as pd

from genemask.report import pretrain as pretrain_report


def _log(steps: int, every: int = 250, switch_after: int | None = 3_000) -> pd.DataFrame:
    """A step log with the columns pretrain.run writes: evaluations every ``every`` steps and a
    CM-GEMS switch to Global after ``switch_after``."""
    rng = np.random.default_rng(0)
    step = np.arange(1, steps + 1)
    evaluated = step % every == 0
    return pd.DataFrame({
        "step": step, "loss": np.round(8 - step / steps + rng.normal(0, 0.1, steps), 6),
        "lr": np.round(4e-3 * (1 - step / steps), 9), "masked_fraction": np.round(rng.uniform(0.1, 0.2, steps), 5),
        "val_perplexity": np.where(evaluated, np.round(3000 - step / 10, 4), np.nan),
        "phase": np.where(step <= (switch_after or steps), "genemask", "global"),
        "tokens": rng.integers(1900, 2048, steps), "seconds": np.round(step * 0.07, 2),
        "data_seconds": np.round(rng.uniform(0, 0.003, steps), 3),
        "yardstick_loss": np.where(evaluated, np.round(7.4 - step / steps, 6), np.nan)})


def test_a_long_log_keeps_its_evaluations_summary_switch_and_tokens():
    metrics = _log(16_000)
    stored = pretrain_report.compact_log(metrics)
    assert pretrain_report.log_block(metrics) == 10 and len(stored) == 1_600
    assert list(stored.columns) == list(metrics.columns) and stored["step"].iloc[-1] == 16_000
    evals, kept = (pretrain_report.eval_rows(m).reset_index(drop=True) for m in (metrics, stored))
    exact = ["step", "lr", "val_perplexity", "phase", "seconds", "yardstick_loss"]
    pd.testing.assert_frame_equal(evals[exact], kept[exact])
    full, short = pretrain_report.summary(metrics), pretrain_report.summary(stored)
    for name in full:
        if isinstance(full[name], float):
            assert abs(full[name] - short[name]) < 1e-6, name
        else:
            assert full[name] == short[name], name
    assert short["switch_step"] == 3_000 and stored["tokens"].sum() == metrics["tokens"].sum()


def test_a_log_that_fits_is_stored_as_written():
    metrics = _log(1_000, every=50, switch_after=None)
    text = metrics.to_csv(index=False)
    assert pretrain_report.log_block(metrics) == 1 and pretrain_report.compact_log_text(text) == text
    longer = _log(10_000)
    stored = pd.read_csv(io.StringIO(pretrain_report.compact_log_text(longer.to_csv(index=False))))
    assert len(stored) == 2_000 and stored["step"].diff().dropna().eq(5).all()  # 5 divides the 250-step interval
