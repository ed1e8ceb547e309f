"""TTS backends behind one protocol: text and an emotion label in, streamed int16 audio out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import numpy as np

MAX_CLAUSE_CHARS = 1000  # one clause; longer text is refused rather than blocking a core for seconds


class TTSError(RuntimeError):
    """The synthesizer failed on a text."""


def clause_text(text: str) -> str:
    """The clause to speak, stripped ("" = nothing to say). Every backend checks its input with this.

    Raises:
        TTSError: longer than ``MAX_CLAUSE_CHARS``.
    """
    text = text.strip()
    if len(text) > MAX_CLAUSE_CHARS:
        raise TTSError(f"clause too long for TTS: {len(text)} > {MAX_CLAUSE_CHARS} characters")
    return text


class Synthesizer(Protocol):
    """Streams speech for one clause.

    Attributes:
        sample_rate: Hz of every chunk produced.
        name: backend and voice, for records and logs.
    ``synthesize(text, emotion)`` yields ``np.ndarray[int16]`` shape (n,) mono chunks as they are produced, in the
    voice style the emotion map gives ``emotion`` (a reply label; None = neutral); cancelling the iteration stops
    synthesis. Raises :class:`TTSError`.
    """

    sample_rate: int
    name: str

    def synthesize(self, text: str, emotion: str | None = None) -> AsyncIterator[np.ndarray]:
        ...
