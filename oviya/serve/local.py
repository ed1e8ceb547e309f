"""The three model stages the API serves, loaded in this process from settings: what each Ray Serve replica holds,
and the whole API in one process (tests, ``python -m oviya.serve --local``).

A served process uses only local backends: remote chain members (``openai_compat`` STT/TTS, the ``openai`` LLM) are
dropped from its chains, so a profile that points the app at the service never makes the service call itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np

from oviya.audio import StreamResampler
from oviya.brain.persona import load_persona
from oviya.components import build_llm, build_stt, build_tts
from oviya.config import Settings
from oviya.llm import GenerationParams, Message
from oviya.llm.fallback import FallbackChat
from oviya.stt import Transcriber, Transcript
from oviya.tts.fallback import FallbackTTS

REMOTE = {"stt": "openai_compat", "tts": "openai_compat", "llm": "openai"}


def local_settings(settings: Settings) -> Settings:
    """``settings`` with the remote members taken out of the STT, TTS and LLM chains.

    Raises:
        ValueError: a chain holds nothing else.
    """
    update = {}
    for stage, remote in REMOTE.items():
        section = getattr(settings, stage)
        chain = [m for m in section.chain if m != remote]
        if not chain:
            raise ValueError(f"{stage}.chain has no local backend to serve (only {remote})")
        update[stage] = section.model_copy(update={"chain": chain})
    return settings.model_copy(update=update)


def stage_names(settings: Settings) -> dict[str, str]:
    """Model ids of the served stages (``/v1/models``): what a client puts in ``model``."""
    s = local_settings(settings)
    return {"stt": s.stt.model if "faster_whisper" in s.stt.chain else s.stt.chain[0],
            "tts": s.tts.chain[0] if s.tts.chain[0] != "piper" else f"piper:{s.tts.piper.voice}",
            "llm": s.llm.llama_cpp.model if s.llm.chain[0] == "llama_cpp" else s.llm.chain[0]}


class STTStage:
    """Transcribes in a worker thread. Args: stt: a transcriber (:func:`load_stt`)."""

    def __init__(self, stt: Transcriber) -> None:
        self.stt = stt

    async def transcribe(self, audio: np.ndarray) -> Transcript:
        """``np.ndarray[float32]`` shape (n,), 16 kHz mono. Raises STTError, AudioFormatError."""
        return await asyncio.to_thread(self.stt.transcribe, audio)


class TTSStage:
    """Streams int16 little-endian pcm at ``rate`` Hz. Args: tts: the TTS chain; rate: ``serve.speech_sample_rate``."""

    def __init__(self, tts: FallbackTTS, rate: int) -> None:
        self.tts, self.rate = tts, rate

    async def speech(self, text: str, instructions: str | None) -> AsyncIterator[bytes]:
        """``instructions`` naming a reply emotion of the emotion map picks its voice style; else neutral.
        Raises TTSError."""
        label = (instructions or "").strip().lower()
        emotion = label if label in self.tts.styles.current.piper.styles else None
        resampler = StreamResampler(self.tts.sample_rate, self.rate, "int16")
        async for chunk in self.tts.turn().synthesize(text, emotion):
            if len(out := resampler.process(chunk)):
                yield out.astype("<i2").tobytes()
        if len(tail := resampler.process(np.zeros(0, np.int16), last=True)):
            yield tail.astype("<i2").tobytes()


class LLMStage:
    """Streams a chat model's deltas. Args: llm: the LLM chain."""

    def __init__(self, llm: FallbackChat) -> None:
        self.llm = llm

    def chat(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[str]:
        """Text deltas. Raises LLMError."""
        return self.llm.stream(messages, params)


def load_stt(settings: Settings) -> STTStage:
    return STTStage(build_stt(local_settings(settings)))


def load_tts(settings: Settings) -> TTSStage:
    return TTSStage(build_tts(local_settings(settings)), settings.serve.speech_sample_rate)


def load_llm(settings: Settings) -> LLMStage:
    """The local LLM chain, its prompt cache warmed with the default persona's system message."""
    settings = local_settings(settings)
    llm = build_llm(settings)
    llm.warmup([{"role": "system", "content": load_persona(settings.brain.persona).system_message()}])
    return LLMStage(llm)


class LocalStages:
    """:class:`oviya.serve.api.Stages` with all three stages in this process.

    Args:
        names: model ids (:func:`stage_names`); stt, tts, llm: the stages.
    """

    def __init__(self, names: dict[str, str], stt: STTStage, tts: TTSStage, llm: LLMStage) -> None:
        self.names = names
        self._stt, self._tts, self._llm = stt, tts, llm

    @classmethod
    def load(cls, settings: Settings) -> LocalStages:
        """Load the three stages' local models from ``settings``."""
        return cls(stage_names(settings), load_stt(settings), load_tts(settings), load_llm(settings))

    async def transcribe(self, audio: np.ndarray) -> Transcript:
        return await self._stt.transcribe(audio)

    def speech(self, text: str, instructions: str | None) -> AsyncIterator[bytes]:
        return self._tts.speech(text, instructions)

    def chat(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[str]:
        return self._llm.chat(messages, params)
