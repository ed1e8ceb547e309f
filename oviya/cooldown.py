"""Which member of a fallback chain to ask first (the LLM's and the STT's chains): a member that failed sits out
``retry_after_s`` behind the healthy ones, so a dead server does not cost every turn its timeout, yet is still
asked when every other member fails too."""

from __future__ import annotations

import time
from collections.abc import Callable


class Cooldown:
    """Failure book-keeping of a chain of ``size`` members.

    Args:
        size: members in the chain (indices 0..size-1, in chain order).
        retry_after_s: a failed member waits this long (s) behind the healthy ones.
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(self, size: int, retry_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size, self.retry_after_s, self.clock = size, retry_after_s, clock
        self._failed_at: dict[int, float] = {}

    def order(self) -> list[int]:
        """Member indices to try: the healthy ones in chain order, then those cooling down."""
        now = self.clock()
        healthy = [i for i in range(self.size) if now - self._failed_at.get(i, -1e9) >= self.retry_after_s]
        return healthy + [i for i in range(self.size) if i not in healthy]

    def failed(self, i: int) -> None:
        self._failed_at[i] = self.clock()

    def succeeded(self, i: int) -> None:
        self._failed_at.pop(i, None)
