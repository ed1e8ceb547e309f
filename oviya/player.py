"""Real-time playout of reply audio, with a record of what the listener actually heard.

TTS produces audio faster than real time. Handing it all to the transport at once would leave seconds of audio in
buffers we cannot recall, so barge-in could not silence Oviya quickly and we would not know which words the user
heard. The player instead releases fixed-size frames at the playback pace, at most ``lead`` seconds before each is
due at the listener's ear. Frames released but not yet due can be taken back: ``pause`` re-queues them (nothing is
lost when Oviya resumes after a backchannel) and ``flush`` drops them; the caller then tells the transport to drop
its copies.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from oviya.clock import Clock

# Shorter waits count as none: float sums of frame times can leave a remainder of 1e-17 s, which a virtual clock
# (tests/test_scenarios.py) may never advance past.
TICK_S = 1e-6


@dataclass
class _Frame:
    pcm: np.ndarray
    tag: object
    due: float = 0.0  # clock time its first sample plays, set on release


class AudioPlayer:
    """Paces int16 mono audio out in frames.

    Args:
        clock: time source (real or virtual).
        sample_rate: Hz of all audio given to :meth:`enqueue`.
        frame_ms: size of the released frames.
        lead_s: how far ahead of its play time a frame is released (jitter margin of the transport).
        emit: called with each released frame (``np.ndarray[int16]`` (frame,)), its tag and its due time.
    """

    def __init__(self, clock: Clock, sample_rate: int, frame_ms: int, lead_s: float,
                 emit: Callable[[np.ndarray, object, float], None]) -> None:
        self.clock = clock
        self.sample_rate = sample_rate
        self.frame = sample_rate * frame_ms // 1000
        self.frame_s = self.frame / sample_rate
        self.lead_s = lead_s
        self._emit = emit
        self._queue: deque[_Frame] = deque()
        self._inflight: deque[_Frame] = deque()  # released, maybe not yet due
        self._released: dict[object, int] = {}  # tag -> samples released
        self._partial = np.zeros(0, dtype=np.int16)
        self._partial_tag: object = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._next_due = 0.0  # when the next released frame will play
        self.paused = False

    def enqueue(self, pcm: np.ndarray, tag: object) -> None:
        """Queue ``np.ndarray[int16]`` (n,) audio at ``sample_rate``; ``tag`` (any value) is passed back with each
        frame and used by :meth:`heard_samples`."""
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

    def _take_back(self) -> list[_Frame]:
        """Remove released frames that have not started playing; returns them in order."""
        now = self.clock.now()
        back = []
        while self._inflight and self._inflight[-1].due > now:
            f = self._inflight.pop()
            self._released[f.tag] -= len(f.pcm)
            back.append(f)
        back.reverse()
        self._next_due = now
        return back

    def pause(self) -> None:
        """Stop releasing and take back what has not played yet; :meth:`resume` continues where it stopped."""
        if not self.paused:
            self.paused = True
            self._queue.extendleft(reversed(self._take_back()))

    def resume(self) -> None:
        """Continue after :meth:`pause`."""
        if self.paused:
            self.paused = False
            self._wake.set()

    def flush(self) -> None:
        """Drop all audio not yet played (barge-in) and leave pause."""
        self._take_back()
        self._queue.clear()
        self._partial = np.zeros(0, dtype=np.int16)
        self.paused = False
        self._idle.set()

    def heard_samples(self, tag: object) -> int:
        """Samples of ``tag`` that have played (or are playing) by now."""
        now = self.clock.now()
        return self._released.get(tag, 0) - sum(len(f.pcm) for f in self._inflight if f.tag == tag and f.due > now)

    def playing(self) -> bool:
        """True while released audio is still sounding."""
        return self.clock.now() < self._next_due

    async def wait_played(self) -> None:
        """Wait until every queued frame is released and has had time to play."""
        while True:
            await self._idle.wait()
            remaining = self._next_due - self.clock.now()
            if remaining <= TICK_S:
                return
            await self.clock.sleep(remaining)
            if self._idle.is_set():
                return

    async def run(self) -> None:
        """Release frames forever (run as a task; cancel to stop)."""
        while True:
            if not self._queue or self.paused:
                if not self._queue:
                    self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            now = self.clock.now()
            self._next_due = max(self._next_due, now)  # after a gap, playback restarts now
            release_at = self._next_due - self.lead_s
            if release_at > now + TICK_S:
                await self.clock.sleep(release_at - now)
                continue
            f = self._queue.popleft()
            f.due = self._next_due
            self._next_due += self.frame_s
            self._inflight.append(f)
            while self._inflight and self._inflight[0].due + self.frame_s < now - 1.0:
                self._inflight.popleft()  # long played; keep a second of history
            self._released[f.tag] = self._released.get(f.tag, 0) + len(f.pcm)
            self._emit(f.pcm, f.tag, f.due)
