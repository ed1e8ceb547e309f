"""The engine's notion of time, injectable so turn logic can also run on a virtual clock."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds and a matching sleep."""

    def now(self) -> float:
        ...

    async def sleep(self, seconds: float) -> None:
        ...


class RealClock:
    """Wall time: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FastForwardClock:
    """Wall time that skips every wait: ``sleep`` advances the clock instead of waiting.

    For runs where audio is rendered rather than played (a typed turn answered as a clip, offline evaluation):
    compute stages still take their real time, so their timings stay true, but real-time playout costs nothing.
    """

    def __init__(self) -> None:
        self._skipped = 0.0

    def now(self) -> float:
        return time.monotonic() + self._skipped

    async def sleep(self, seconds: float) -> None:
        self._skipped += max(0.0, seconds)
        await asyncio.sleep(0)


class LoopClock:
    """The running event loop's time: the same as :class:`RealClock` on an ordinary loop, virtual on a loop whose
    time is faked (``looptime`` in the scenario tests), so the engine's clock, its timers (``call_later``), its
    timeouts and the player's pacing all share one time line."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
