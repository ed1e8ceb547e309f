"""Speech-to-text behind one protocol: a 16 kHz utterance in, its words out.

Backends: ``whisper`` (faster-whisper, embedded models), ``openai_compat`` (any server of the OpenAI audio API:
``POST /v1/audio/transcriptions``), and ``fallback`` (a chain of them, ``stt.chain``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from oviya.audio import AudioFormatError

SAMPLE_RATE = 16000
MAX_AUDIO_S = 120.0  # one call never transcribes more than this (Whisper works in 30 s windows; bounds latency)


class STTError(RuntimeError):
    """The backend could not transcribe (down, slow, or a server error); a chain asks the next one."""


@dataclass(frozen=True)
class Transcript:
    """Result of one transcription.

    Attributes:
        text: the recognised words, stripped ('' when nothing was heard).
        audio_s: seconds of audio transcribed.
        language: detected or forced language code.
        backend: the chain member that transcribed it (set by :class:`oviya.stt.fallback.FallbackSTT`).
    """

    text: str
    audio_s: float
    language: str
    backend: str | None = None


class Transcriber(Protocol):
    """Turns one utterance into text. Implementations are blocking (call them in a worker thread).

    Attributes:
        name: backend and model, for records and logs.
    """

    name: str

    def transcribe(self, audio: np.ndarray) -> Transcript:
        """Args: audio ``np.ndarray[float32]`` shape (n,), 16 kHz mono.

        Raises:
            AudioFormatError: not float32 mono, or longer than ``MAX_AUDIO_S``.
            STTError: the backend failed.
        """
        ...


def check_audio(audio: np.ndarray) -> float:
    """Validate one utterance (float32 mono at 16 kHz, at most ``MAX_AUDIO_S``); returns its duration in s.

    Raises:
        AudioFormatError: wrong dtype or shape, or too long.
    """
    if not isinstance(audio, np.ndarray) or audio.dtype != np.float32 or audio.ndim != 1:
        raise AudioFormatError(f"STT takes float32 mono (n,) at 16 kHz, got {getattr(audio, 'dtype', type(audio))} "
                               f"{getattr(audio, 'shape', '')}")
    if len(audio) > MAX_AUDIO_S * SAMPLE_RATE:
        raise AudioFormatError(f"utterance too long for one STT call: {len(audio) / SAMPLE_RATE:.1f} s > {MAX_AUDIO_S} s")
    return len(audio) / SAMPLE_RATE
