"""Fake stages with scripted timings, for scenario tests of the turn logic on virtual time (``looptime``).

Logic only: no figure Oviya reports comes from these. The real-model tests stay as they are.

Speech is synthetic and self-describing: :class:`Script` turns ``[("hello there", 1.2), 0.5, ...]`` (an utterance
and its length in seconds, or a pause) into 16 kHz audio in which each utterance is a tone of its own amplitude.
:class:`FakeVAD` hears speech wherever a chunk is loud, :class:`FakeSTT` reads back the texts whose amplitudes the
audio holds, and :class:`FakeSmartTurn` calls a turn complete unless its last utterance ends in "...".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from oviya.brain.emotion import EmotionDetector, load_emotion_config
from oviya.brain.identity import IdentityRouter, load_identity_rules
from oviya.brain.persona import load_persona
from oviya.brain.safety import SafetyRouter, load_rules
from oviya.components import Components
from oviya.config import CONFIG_DIR, Settings
from oviya.llm import GenerationParams, LLMError, Message
from oviya.llm.fallback import FallbackChat
from oviya.stt import Transcript
from oviya.tts import TTSError
from oviya.tts.fallback import FallbackTTS
from oviya.tts.styles import EmotionMap

SR = 16000
TONE_HZ = 220.0
SPEECH_PROB, SILENCE_PROB = 0.95, 0.02
LOUD = 0.02  # a chunk whose peak is above this is speech to FakeVAD


class Script:
    """Synthetic speech: each utterance a tone whose amplitude names it (see the module docstring)."""

    def __init__(self) -> None:
        self.texts: dict[int, str] = {}  # amplitude in 1/1000 -> text

    def utterance(self, text: str, seconds: float) -> np.ndarray:
        """``seconds`` of speech that :class:`FakeSTT` transcribes as ``text``: float32, 16 kHz mono."""
        level = next((k for k, t in self.texts.items() if t == text), None)
        if level is None:
            level = 100 + 20 * len(self.texts)  # 0.10, 0.12, ... of full scale
            self.texts[level] = text
        t = np.arange(int(seconds * SR)) / SR
        return (level / 1000 * np.sign(np.sin(2 * np.pi * TONE_HZ * t))).astype(np.float32)

    def audio(self, parts: list[tuple[str, float] | float]) -> np.ndarray:
        """Utterances ``(text, seconds)`` and pauses ``seconds`` in order."""
        return np.concatenate([self.utterance(*p) if isinstance(p, tuple) else np.zeros(int(p * SR), np.float32)
                               for p in parts])

    def heard(self, audio: np.ndarray) -> list[str]:
        """The texts whose tones ``audio`` holds, in order of appearance."""
        peaks = np.abs(audio[: len(audio) // 512 * 512]).reshape(-1, 512).max(axis=1) if len(audio) >= 512 else []
        out: list[str] = []
        for p in peaks:
            text = self.texts.get(int(round(p * 1000)))
            if text is not None and text not in out:
                out.append(text)
        return out


class FakeVAD:
    """Stands in for :class:`~oviya.vad.SileroModel`: speech probability from a chunk's loudness."""

    def run(self, window: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        chunk = window[0, -512:]
        return (SPEECH_PROB if np.abs(chunk).max() > LOUD else SILENCE_PROB), state


@dataclass
class FakeSmartTurn:
    """Stands in for Smart Turn: complete (0.9) unless the last utterance heard ends in "..." (0.1)."""

    script: Script

    def probability(self, audio: np.ndarray) -> float:
        heard = self.script.heard(audio)
        return 0.1 if heard and heard[-1].endswith("...") else 0.9


@dataclass
class FakeSTT:
    """Stands in for Whisper: the script's texts in the audio, joined. ``fail``: always raise; ``fail_next``: raise
    on that many next calls."""

    script: Script
    fail: bool = False
    fail_next: int = 0
    calls: int = 0
    name: str = "fake_stt"

    def transcribe(self, audio: np.ndarray) -> Transcript:
        self.calls += 1
        if self.fail or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            raise RuntimeError("fake STT failure")
        return Transcript(" ".join(t.rstrip(".") for t in self.script.heard(audio)), len(audio) / SR, "en")


@dataclass
class FakeLLM:
    """A chat model with scripted timing: ``first_token_s``, then one word every ``1 / tokens_per_s`` s.

    Args:
        reply: the words it says (a function of the last user message, or fixed text).
        mode: ``ok``; ``raise`` (LLMError before the first token); ``hang`` (never answers).
    """

    reply: str | Callable[[str], str] = "Oh, that sounds lovely. Tell me more about it, I would like to hear."
    first_token_s: float = 0.2
    tokens_per_s: float = 20.0
    mode: str = "ok"
    name: str = "fake-llm"
    calls: list[str] = field(default_factory=list)
    systems: list[str] = field(default_factory=list)  # the system prompt of each call
    warmed: list[list[Message]] = field(default_factory=list)  # the prompt prefixes it was asked to precompute

    async def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[str]:
        user = messages[-1]["content"]
        self.calls.append(user)
        self.systems.append(messages[0]["content"])
        if self.mode == "raise":
            raise LLMError("fake LLM down")
        await asyncio.sleep(float("inf") if self.mode == "hang" else self.first_token_s)
        text = self.reply(user) if callable(self.reply) else self.reply
        for i, word in enumerate(text.split()):
            if i:
                await asyncio.sleep(1 / self.tokens_per_s)
            yield ("" if i == 0 else " ") + word

    def warmup(self, messages: list[Message]) -> None:
        self.warmed.append(messages)


@dataclass
class FakeTTS:
    """A synthesizer with scripted timing: audio of ``s_per_word`` a word, the first chunk after
    ``first_audio_s``, faster than real time. ``fail_on``: raise TTSError on these clause numbers (1-based)."""

    first_audio_s: float = 0.15
    s_per_word: float = 0.3
    fail_on: tuple[int, ...] = ()
    sample_rate: int = 24000
    name: str = "fake-tts"
    clauses: list[str] = field(default_factory=list)

    async def synthesize(self, text: str, emotion: str | None = None) -> AsyncIterator[np.ndarray]:
        self.clauses.append(text)
        if len(self.clauses) in self.fail_on:
            raise TTSError("fake TTS failure")
        await asyncio.sleep(self.first_audio_s)
        n = int(len(text.split()) * self.s_per_word * self.sample_rate)
        chunk = self.sample_rate // 10
        for i in range(0, n, chunk):
            yield np.full(min(chunk, n - i), 3000, np.int16)
            await asyncio.sleep(0.01)


@dataclass
class FakeStages:
    script: Script
    stt: FakeSTT
    llms: list[FakeLLM]
    ttss: list[FakeTTS]
    components: Components


def fake_components(settings: Settings, llms: list[FakeLLM] | None = None, ttss: list[FakeTTS] | None = None,
                    stt_fail: bool = False) -> FakeStages:
    """Components of fakes (VAD, Smart Turn, STT, LLM chain, TTS chain) with the real persona, safety rules (without
    the embedding layer), identity router and emotion detector (pure logic)."""
    script = Script()
    llms = llms or [FakeLLM()]
    ttss = ttss or [FakeTTS()]
    stt = FakeSTT(script, fail=stt_fail)
    s = settings.llm
    comps = Components(
        vad=FakeVAD(),  # type: ignore[arg-type]
        stt=stt,
        llm=FallbackChat(llms, s.first_token_timeout_s, s.stall_timeout_s, s.retry_after_s),  # type: ignore[arg-type]
        tts=FallbackTTS(ttss, settings.tts.first_audio_timeout_s,  # type: ignore[arg-type]
                        EmotionMap(CONFIG_DIR / settings.tts.emotion_map)),
        persona=load_persona(settings.brain.persona),
        safety=SafetyRouter(load_rules(CONFIG_DIR / settings.brain.safety)),
        identity=IdentityRouter(load_identity_rules(CONFIG_DIR / settings.brain.identity)),
        emotion=EmotionDetector(load_emotion_config(CONFIG_DIR / settings.brain.emotion)),
        smart_turn=FakeSmartTurn(script),  # type: ignore[arg-type]
    )
    return FakeStages(script, stt, llms, ttss, comps)
