"""A fallback chain of transcribers (``stt.chain``, e.g. ``[openai_compat, faster_whisper]``).

Each utterance tries the backends in order; one that raises :class:`oviya.stt.STTError` or ``OSError`` (down, or
slower than its own timeout) is tried last for ``retry_after_s`` (:class:`oviya.cooldown.Cooldown`, as the LLM's
chain does) so a dead server does not cost every turn its timeout. Bad audio (``AudioFormatError``) is the caller's
error and is raised at once: no other backend would take it either.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np

from oviya.cooldown import Cooldown
from oviya.stt import STTError, Transcriber, Transcript

log = logging.getLogger(__name__)


class FallbackSTT:
    """:class:`oviya.stt.Transcriber` over an ordered list of transcribers (blocking, thread-safe).

    Args:
        members: tried in this order.
        retry_after_s: a failed backend is skipped for this long (s) unless every other one fails too.
        clock: monotonic seconds (tests may pass their own).
    Each transcript names the member that made it (``backend``).
    """

    def __init__(self, members: list[Transcriber], retry_after_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not members:
            raise ValueError("FallbackSTT needs at least one transcriber")
        self.members = members
        self.name = " -> ".join(m.name for m in members)
        self.health = Cooldown(len(members), retry_after_s, clock)

    def transcribe(self, audio: np.ndarray) -> Transcript:
        errors = []
        for i in self.health.order():
            member = self.members[i]
            try:
                result = member.transcribe(audio)
            except (STTError, OSError) as e:
                log.warning("STT backend %s failed (%s); trying the next one", member.name, e)
                errors.append(f"{member.name}: {e}")
                self.health.failed(i)
                continue
            self.health.succeeded(i)
            return dataclasses.replace(result, backend=member.name)
        raise STTError("every STT backend failed: " + "; ".join(errors))
