"""Small summary statistics used by every task's report."""

from __future__ import annotations

import numpy as np


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation) rounded to 0.1, or None for no values."""
    vals = [v for v in values if v is not None]
    return round(float(np.percentile(vals, q)), 1) if vals else None
