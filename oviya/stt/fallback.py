"""A fallback chain of transcribers (``stt.chain``, e.g. ``[openai_compat, faster_whisper]``).

Each utterance tries the backends in order; one that raises :class:`oviya.stt.STTError` or ``OSError`` (down, or
slower than its own timeout) is skipped for ``retry_after_s`` so a dead server does not cost every turn its timeout,
as :class:`oviya.llm.fallback.FallbackChat` does for chat models. Bad audio (``AudioFormatError``) is the caller's
error and is raised at once: no other backend would take it either.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np

from oviya.stt import STTError, Transcriber, Transcript

log = logging.getLogger(__name__)


class FallbackSTT:
    """:class:`oviya.stt.Transcriber` over an ordered list of transcribers (blocking, thread-safe).

    Args:
        members: tried in this order.
        retry_after_s: a failed backend is skipped for this long (s) unless every other one fails too.
        clock: monotonic seconds (tests may pass their own).
    Attributes:
        last_used: name of the backend that gave the last transcript.
    """

    def __init__(self, members: list[Transcriber], retry_after_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not members:
            raise ValueError("FallbackSTT needs at least one transcriber")
        self.members = members
        self.retry_after_s = retry_after_s
        self.name = " -> ".join(m.name for m in members)
        self._clock = clock
        self._failed_at: dict[int, float] = {}
        self.last_used: str | None = None

    def transcribe(self, audio: np.ndarray) -> Transcript:
        now = self._clock()
        healthy = [i for i in range(len(self.members)) if now - self._failed_at.get(i, -1e9) >= self.retry_after_s]
        errors = []
        for i in healthy + [i for i in range(len(self.members)) if i not in healthy]:
            member = self.members[i]
            try:
                result = member.transcribe(audio)
            except (STTError, OSError) as e:
                log.warning("STT backend %s failed (%s); trying the next one", member.name, e)
                errors.append(f"{member.name}: {e}")
                self._failed_at[i] = self._clock()
                continue
            self._failed_at.pop(i, None)
            self.last_used = member.name
            return dataclasses.replace(result, backend=member.name)
        raise STTError("every STT backend failed: " + "; ".join(errors))
