"""Fault injection for resilience tests: make one session's STT, LLM or TTS fail on its next turn.

Enabled only with ``server.faults_api: true`` (``POST /api/faults``); production servers never build these
wrappers. Each session gets its own :class:`FaultPlan` and its own wrapped stages around the shared models, so a
fault armed for one call never touches another. A fault lasts until the session's next turn record (the handler
calls :meth:`FaultPlan.clear`), so the test can check both that the faulty turn still got a reply and that the
session goes on.

Faults (what a real backend does when it breaks):
- ``stt``: ``raise`` (the recogniser throws).
- ``llm``: ``raise`` (server down: refused at once) or ``hang`` (a few tokens, then silence: hung mid-turn).
- ``tts``: ``raise`` on the first backend of the chain (the fallback chain must take over).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Literal

import numpy as np

from oviya.components import Components
from oviya.llm import ChatModel, GenerationParams, LLMError, Message
from oviya.llm.fallback import FallbackChat
from oviya.stt import Transcriber, Transcript
from oviya.tts import Synthesizer, TTSError
from oviya.tts.fallback import FallbackTTS

Stage = Literal["stt", "llm", "tts"]
Mode = Literal["raise", "hang"]
FAULTS: dict[Stage, tuple[Mode, ...]] = {"stt": ("raise",), "llm": ("raise", "hang"), "tts": ("raise",)}
HANG_AFTER_TOKENS = 3  # a hanging LLM says this much before going silent


class InjectedFault(RuntimeError):
    """The error an armed fault raises."""


class FaultPlan:
    """The faults armed for one session."""

    def __init__(self) -> None:
        self._armed: dict[Stage, Mode] = {}

    def arm(self, stage: Stage, mode: Mode) -> None:
        """Raises ValueError for an unknown stage or a mode that stage does not support."""
        if mode not in FAULTS.get(stage, ()):
            raise ValueError(f"unknown fault {stage}/{mode}; known: {FAULTS}")
        self._armed[stage] = mode

    def mode(self, stage: Stage) -> Mode | None:
        return self._armed.get(stage)

    def clear(self) -> None:
        self._armed.clear()


class FaultyTranscriber:
    """:class:`oviya.stt.Transcriber` that raises while an ``stt`` fault is armed."""

    def __init__(self, inner: Transcriber, plan: FaultPlan) -> None:
        self.inner, self.plan = inner, plan
        self.name = inner.name

    def transcribe(self, audio: np.ndarray) -> Transcript:
        if self.plan.mode("stt") == "raise":
            raise InjectedFault("injected STT fault")
        return self.inner.transcribe(audio)


class FaultyChat:
    """:class:`oviya.llm.ChatModel` that is down (``raise``) or hangs after a few tokens (``hang``) while armed."""

    def __init__(self, inner: ChatModel, plan: FaultPlan) -> None:
        self.inner, self.plan = inner, plan
        self.name = inner.name

    def warmup(self, messages: list[Message]) -> None:
        self.inner.warmup(messages)

    async def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[str]:
        mode = self.plan.mode("llm")
        if mode == "raise":
            raise LLMError(f"{self.name}: injected fault: connection refused")
        n = 0
        async with aclosing(self.inner.stream(messages, params)) as deltas:  # closed at once: frees the model
            async for delta in deltas:
                yield delta
                n += 1
                if mode == "hang" and n >= HANG_AFTER_TOKENS:
                    await asyncio.Event().wait()  # silent until the fallback chain's stall timeout cancels us


class FaultySynth:
    """:class:`oviya.tts.Synthesizer` that raises while a ``tts`` fault is armed."""

    def __init__(self, inner: Synthesizer, plan: FaultPlan) -> None:
        self.inner, self.plan = inner, plan
        self.sample_rate, self.name = inner.sample_rate, inner.name

    async def synthesize(self, text: str, emotion: str | None = None) -> AsyncIterator[np.ndarray]:
        if self.plan.mode("tts") == "raise":
            raise TTSError(f"{self.name}: injected fault")
        async for chunk in self.inner.synthesize(text, emotion):
            yield chunk


def with_faults(c: Components, plan: FaultPlan) -> Components:
    """``c`` with its STT, every LLM of the chain, and the first TTS of the chain wrapped to obey ``plan``.

    The chains are rebuilt per session with the same timeouts, so their failure book-keeping is the session's own.
    """
    llm, tts = c.llm, c.tts
    return dataclasses.replace(
        c,
        stt=FaultyTranscriber(c.stt, plan),
        llm=FallbackChat([FaultyChat(m, plan) for m in llm.models], llm.first_token_timeout_s,
                         llm.stall_timeout_s, llm.health.retry_after_s),
        tts=FallbackTTS([FaultySynth(tts.synths[0], plan), *tts.synths[1:]], tts.first_audio_timeout_s, tts.styles),
    )
