"""Matplotlib helpers shared by the tasks (headless Agg backend)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


@contextmanager
def figure(path: Path, title: str) -> Iterator[plt.Axes]:
    """Yield axes; the figure is saved to ``path`` (PNG) and closed."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    try:
        yield ax
    finally:
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


def cdf(ax: plt.Axes, values: list[float], label: str) -> None:
    """Empirical CDF of ``values`` (None and NaN dropped)."""
    v = np.sort([x for x in values if x is not None and np.isfinite(x)])
    if len(v):
        ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", label=label)
