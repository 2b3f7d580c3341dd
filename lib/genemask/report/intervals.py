"""One-line interval cells (``+0.047 ±0.070``) shared by the verdict lenses and the transition
tables: a low module of its own, so that neither has to import the other for a number's format."""
from __future__ import annotations

import numpy as np


def signed(value: float, digits: int) -> str:
    """The value with its sign, and a true minus (U+2212) as the tables print it."""
    return f"{value:+,.{digits}f}".replace("-", "−")


def compact(effect: float, low: float, high: float, digits: int = 3) -> str:
    """``+0.047 ±0.070``: the effect and the half-width of its (symmetric, t) interval, on one line;
    ``—`` without a test."""
    if not np.isfinite(effect):
        return "—"
    half = (high - low) / 2 if np.isfinite(low) and np.isfinite(high) else np.nan
    return signed(effect, digits) + ("" if not np.isfinite(half) else f" ±{half:,.{digits}f}")
