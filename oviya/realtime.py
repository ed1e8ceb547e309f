"""Feeding an engine as a microphone does: one frame every ``frame_s`` of wall time, events handed on as they come.

The eval harness (latency, barge-in, avatar tasks) and the real-model tests play recorded speech this way, so their
timings are those of a live call: the engine sees audio at the pace it would arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from oviya.engine import TurnEngine
from oviya.observer import EngineObserver, notify
from oviya.vad import SAMPLE_RATE

FRAME_S = 0.02  # 20 ms: the frame of WebRTC's Opus and of most microphones

FrameSource = Callable[[int], np.ndarray | None]


def clip_then_silence(audio: np.ndarray, tail_s: float, frame_s: float = FRAME_S) -> FrameSource:
    """Frame ``k`` of ``audio`` (float32 or int16, shape (n,), 16 kHz mono), then silence for ``tail_s`` seconds,
    then the end (None)."""
    n = int(SAMPLE_RATE * frame_s)
    last = len(audio) + int(SAMPLE_RATE * tail_s)  # samples

    def frame(k: int) -> np.ndarray | None:
        if k * n >= last:
            return None
        return audio[k * n : (k + 1) * n] if k * n < len(audio) else np.zeros(n, audio.dtype)

    return frame


async def play(engine: TurnEngine, source: FrameSource, *observers: EngineObserver,
               until: Callable[[], bool] = lambda: False, frame_s: float = FRAME_S) -> int:
    """Push ``source(0)``, ``source(1)``, … (16 kHz mono) into ``engine``, one per ``frame_s`` of wall time, until
    the source ends (None) or ``until()`` holds. After each frame, the events waiting are handed to ``observers``
    (:func:`~oviya.observer.notify`); with none, they stay queued for :meth:`TurnEngine.next_event`.

    Returns:
        the number of frames pushed.
    Raises:
        oviya.audio.AudioFormatError: a frame the engine refuses.
    """
    loop = asyncio.get_running_loop()
    start, k = loop.time(), 0
    while not until() and (frame := source(k)) is not None:
        engine.push_audio(frame, SAMPLE_RATE)
        k += 1
        await asyncio.sleep(max(0.0, start + k * frame_s - loop.time()))
        if observers:
            while (ev := await engine.next_event(0)) is not None:
                notify(ev, *observers)
    return k
