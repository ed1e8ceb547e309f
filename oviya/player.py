"""Real-time playout of reply audio, with a record of what was actually played.

TTS produces audio faster than real time. Handing it all to the transport at once would leave seconds of audio in
buffers we cannot recall, so barge-in could not silence Oviya quickly and we would not know which words the user
heard. The player instead releases fixed-size frames at the playback pace, at most ``lead`` seconds ahead of the
listener's ear; flushing drops everything not yet released.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from oviya.clock import Clock


@dataclass
class _Frame:
    pcm: np.ndarray
    tag: object


class AudioPlayer:
    """Paces int16 mono audio out in frames.

    Args:
        clock: time source (real or virtual).
        sample_rate: Hz of all audio given to :meth:`enqueue`.
        frame_ms: size of the released frames.
        lead_s: how far ahead of real time frames are released (jitter margin of the transport).
        emit: called with each released frame (``np.ndarray[int16]`` shape (frame,)) and its tag.
    """

    def __init__(
        self, clock: Clock, sample_rate: int, frame_ms: int, lead_s: float, emit: Callable[[np.ndarray, object], None]
    ) -> None:
        self.clock = clock
        self.sample_rate = sample_rate
        self.frame = sample_rate * frame_ms // 1000
        self.lead_s = lead_s
        self._emit = emit
        self._queue: deque[_Frame] = deque()
        self._partial = np.zeros(0, dtype=np.int16)
        self._partial_tag: object = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._t0 = 0.0  # clock time at which the current run of playback started
        self._released_s = 0.0  # audio released since _t0

    def enqueue(self, pcm: np.ndarray, tag: object) -> None:
        """Queue ``np.ndarray[int16]`` (n,) audio at ``sample_rate``; ``tag`` (any value) is passed back with each frame."""
        if self._partial_tag != tag and len(self._partial):
            self._flush_partial()
        self._partial_tag = tag
        buf = np.concatenate([self._partial, pcm])
        n = len(buf) // self.frame
        for i in range(n):
            self._queue.append(_Frame(buf[i * self.frame : (i + 1) * self.frame], tag))
        self._partial = buf[n * self.frame :]
        if n:
            self._idle.clear()
            self._wake.set()

    def finish(self) -> None:
        """No more audio for now: release the last partial frame (zero-padded)."""
        self._flush_partial()

    def _flush_partial(self) -> None:
        if len(self._partial):
            frame = np.zeros(self.frame, dtype=np.int16)
            frame[: len(self._partial)] = self._partial
            self._queue.append(_Frame(frame, self._partial_tag))
            self._partial = np.zeros(0, dtype=np.int16)
            self._idle.clear()
            self._wake.set()

    def flush(self) -> None:
        """Drop all audio not yet released (barge-in)."""
        self._queue.clear()
        self._partial = np.zeros(0, dtype=np.int16)
        self._idle.set()

    async def wait_played(self) -> None:
        """Wait until every queued frame is released and has had time to play."""
        await self._idle.wait()
        await self.clock.sleep(self._t0 + self._released_s - self.clock.now())

    async def run(self) -> None:
        """Release frames forever (run as a task; cancel to stop)."""
        frame_s = self.frame / self.sample_rate
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            now = self.clock.now()
            if now >= self._t0 + self._released_s:  # playback ran dry: a new run starts now
                self._t0, self._released_s = now, 0.0
            due = self._t0 + self._released_s - self.lead_s
            if due > now:
                await self.clock.sleep(due - now)
                continue
            f = self._queue.popleft()
            self._released_s += frame_s
            self._emit(f.pcm, f.tag)
