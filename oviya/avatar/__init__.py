"""The talking avatar: video frames in sync with Oviya's reply audio.

An avatar turns reply audio, as it is released, into frames stamped with the audio time they show, and draws idle
frames while Oviya listens. Backends behind :class:`Avatar`: ``procedural`` (a 2D face drawn with Pillow on this
CPU, mouth driven by the audio envelope; ``procedural.py``) and ``lipsync`` (an external lip-sync service by URL;
``lipsync.py``). :class:`~oviya.avatar.stream.AvatarStream` drives either one for a call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class AvatarFrame:
    """One video frame.

    Attributes:
        image: ``np.ndarray[uint8]`` shape (height, width, 3), RGB.
        timestamp_ms: the time of the first audio sample this frame shows (ms, on the timeline of ``speak``'s
            ``t_ms``); for an idle frame, the time it was drawn for.
        mouth_open: 0 (closed) … 1 (fully open) as drawn; None when a service drew it.
    """

    image: np.ndarray
    timestamp_ms: float
    mouth_open: float | None

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]


class AudioRun:
    """Reply audio buffered on its timeline for a backend. A chunk that does not continue the buffered audio (another
    sample rate, or a gap or overlap over half a frame: a pause, a flush, a new reply) starts a new run.

    Args:
        fps: the avatar's frame rate (sets the half-frame tolerance).
    """

    def __init__(self, fps: int) -> None:
        self.tolerance_ms = 500.0 / fps
        self.pcm = np.zeros(0, np.int16)
        self.rate = 0
        self.t_ms: float | None = None  # timeline time of the buffer's first sample (ms)

    def __len__(self) -> int:
        return len(self.pcm)

    def add(self, pcm: np.ndarray, sample_rate: int, t_ms: float) -> None:
        """Append ``pcm`` (``np.ndarray[int16]`` shape (n,), mono) whose first sample sounds at ``t_ms``."""
        expected = None if self.t_ms is None else self.t_ms + 1000.0 * len(self.pcm) / self.rate
        if expected is None or sample_rate != self.rate or abs(t_ms - expected) > self.tolerance_ms:
            self.pcm, self.rate, self.t_ms = np.zeros(0, np.int16), sample_rate, t_ms
        self.pcm = np.concatenate([self.pcm, np.asarray(pcm, np.int16).reshape(-1)])

    def take(self, n: int | None = None) -> tuple[np.ndarray, float]:
        """Remove the first ``n`` samples (all when None); returns them and the time of the first (ms)."""
        n = len(self.pcm) if n is None else n
        chunk, t_ms = self.pcm[:n], self.t_ms
        self.pcm = self.pcm[n:]
        self.t_ms = t_ms + 1000.0 * n / self.rate
        return chunk, t_ms

    def clear(self) -> None:
        self.pcm, self.t_ms = np.zeros(0, np.int16), None


class AvatarError(RuntimeError):
    """A backend failed; the caller goes on without frames (audio only) until its next turn."""


class Avatar(Protocol):
    """Frames for reply audio (``speak``, ``finish``), for listening (``idle``), and an immediate stop on barge-in."""

    fps: int

    async def speak(self, pcm: np.ndarray, sample_rate: int, t_ms: float, emotion: str | None) -> list[AvatarFrame]:
        """Hand over reply audio (``np.ndarray[int16]`` shape (n,), mono) whose first sample sounds at ``t_ms``;
        returns the frames it completes: one per whole ``1000 / fps`` ms of continuous audio received (audio that
        does not continue the previous call's starts a new run). Raises AvatarError."""
        ...

    async def finish(self) -> list[AvatarFrame]:
        """The reply audio paused or ended: frames for what is still buffered, if the backend draws partial runs.
        Raises AvatarError."""
        ...

    def idle(self, t_ms: float, emotion: str | None = None) -> AvatarFrame:
        """A listening frame at ``t_ms``: mouth closed."""
        ...

    def stop(self) -> None:
        """Barge-in: drop buffered audio; the next frame has the mouth closed."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
