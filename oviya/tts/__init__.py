"""TTS backends behind one protocol: text in, streamed int16 audio out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import numpy as np


class TTSError(RuntimeError):
    """The synthesizer failed on a text."""


class Synthesizer(Protocol):
    """Streams speech for one clause.

    Attributes:
        sample_rate: Hz of every chunk produced.
    ``synthesize(text)`` yields ``np.ndarray[int16]`` shape (n,) mono chunks as they are produced; cancelling the
    iteration stops synthesis. Raises :class:`TTSError`.
    """

    sample_rate: int

    def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        ...
