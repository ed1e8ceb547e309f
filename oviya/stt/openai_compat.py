"""STT on any server of the OpenAI audio API (``POST /v1/audio/transcriptions``: a vLLM or faster-whisper server,
``python -m oviya.serve``), through the official ``openai`` client. The utterance travels as a 16 kHz int16 WAV."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from oviya.config import OpenAIEndpoint
from oviya.stt import SAMPLE_RATE, STTError, Transcript, check_audio


def wav_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """``np.ndarray[float32]`` shape (n,) in [-1, 1] → a 16-bit PCM WAV file's bytes (clipped)."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


class OpenAICompatTranscriber:
    """:class:`oviya.stt.Transcriber` on a remote OpenAI-compatible transcription endpoint (blocking).

    Args:
        settings: ``stt.openai`` (base URL, model, the env variable holding the key, timeout in s, language).
    """

    def __init__(self, settings: OpenAIEndpoint, language: str | None) -> None:
        import openai

        self.settings = settings
        self.language = language
        self.name = f"openai_compat:{settings.model}@{settings.base_url}"
        self._client = openai.OpenAI(base_url=settings.base_url, api_key=settings.api_key(), timeout=settings.timeout_s,
                                     max_retries=0)

    def transcribe(self, audio: np.ndarray) -> Transcript:
        import openai

        duration = check_audio(audio)
        extra = {"language": self.language} if self.language else {}
        try:
            result = self._client.audio.transcriptions.create(
                model=self.settings.model, file=("utterance.wav", wav_bytes(audio), "audio/wav"),
                response_format="json", **extra)
        except openai.OpenAIError as e:
            raise STTError(f"openai-compatible STT {self.settings.base_url}: {e}") from e
        return Transcript(text=result.text.strip(), audio_s=duration, language=self.language or "")
