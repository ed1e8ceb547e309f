"""Matplotlib helpers shared by the tasks (headless Agg backend)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from oviya.events import TurnRecord


@contextmanager
def figure(path: Path, title: str, size_in: tuple[float, float] = (7, 4.5)) -> Iterator[plt.Axes]:
    """Yield axes; the figure (``size_in`` inches at 100 dpi) is saved to ``path`` (PNG) and closed."""
    fig, ax = plt.subplots(figsize=size_in)
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


# The stages of TurnRecord.segments(), in pipeline order, with one colour each (matplotlib's tab10).
STAGE_COLOURS = {"end_of_turn": "tab:blue", "stt": "tab:orange", "llm_ttft": "tab:green",
                 "first_clause": "tab:red", "tts_ttfb": "tab:purple", "playout": "tab:gray"}


def waterfall(ax: plt.Axes, records: list[TurnRecord], labels: list[str] | None = None) -> None:
    """One band per turn (the first at the top, labelled by ``labels`` or its turn id and outcome), one lane per
    stage of :meth:`TurnRecord.segments` in pipeline order (stages may overlap: STT starts speculatively before the
    end-of-turn decision), each a bar from its start to its end in ms from the end of the user's speech; a black
    tick at the voice-to-voice latency. Turns without stamped stages are left out."""
    names = labels or [f"turn {r.turn_id} ({r.outcome})" for r in records]
    rows = [(rec, name) for rec, name in zip(records, names, strict=True) if rec.segments()]
    lane = 0.8 / len(STAGE_COLOURS)
    for y, (rec, _) in enumerate(reversed(rows)):
        for name, start, end in rec.segments():
            top = y + 0.4 - lane * (list(STAGE_COLOURS).index(name) + 1)
            ax.broken_barh([(start, max(end - start, 1.0))], (top, lane * 0.9), color=STAGE_COLOURS[name])
        if rec.v2v_ms is not None:
            ax.vlines(rec.v2v_ms, y - 0.45, y + 0.45, color="black", linewidth=1.5)
    ax.set_yticks(range(len(rows)), [name for _, name in reversed(rows)], fontsize=8)
    ax.set_ylim(-0.6, max(len(rows), 1) - 0.4)
    ax.set_xlabel("ms from the end of the user's speech")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.legend(handles=[Patch(color=c, label=n) for n, c in STAGE_COLOURS.items()] +
              [Line2D([], [], color="black", label="v2v")], fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5),
              frameon=False)


def render(draw: Callable[[plt.Axes], None], title: str = "", size_in: tuple[float, float] = (7.2, 3.6)) -> np.ndarray:
    """A figure drawn by ``draw`` as an RGB image (np.ndarray[uint8], shape (h, w, 3)), at 100 dpi. It uses
    matplotlib's object API, not pyplot's global state, so it may run in a worker thread."""
    fig = Figure(figsize=size_in, dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    draw(ax)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
