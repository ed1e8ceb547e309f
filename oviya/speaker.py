"""Speaking a reply: the brain's text deltas → clauses → TTS → the real-time player (after Kyutai Unmute's
``unmute_handler.py``: each stage streams into the next, so the first clause is synthesised while later tokens are
still being generated).

It fills the reply's timing record (``llm_start``, ``llm_first_token``, ``first_clause``, ``tts_first_audio``,
backends used, errors) and counts the samples of each clause, so the engine can keep only the words heard.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import aclosing

import numpy as np

from oviya.audio import StreamResampler, to_float32, to_int16
from oviya.brain.brain import Brain
from oviya.brain.clauses import ClauseChunker, ends_sentence
from oviya.clock import Clock
from oviya.config import BrainSettings
from oviya.events import ErrorEvent, Event, TranscriptEvent
from oviya.llm import LLMError
from oviya.player import AudioPlayer
from oviya.reply import Reply
from oviya.tts.fallback import FallbackTTS

log = logging.getLogger(__name__)


class Speaker:
    """Turns replies (and backchannel phrases) into audio in the player's queue.

    Args:
        brain: the session's brain (plan, stream, screen).
        tts: the TTS chain.
        player: the session's real-time player.
        clock: the engine's clock.
        settings: ``brain`` (clause sizes, ``max_sentences``).
        emit: the engine's event sink (partial transcripts, stage errors).
    """

    def __init__(self, brain: Brain, tts: FallbackTTS, player: AudioPlayer, clock: Clock, settings: BrainSettings,
                 emit: Callable[[Event], None]) -> None:
        self.brain = brain
        self.tts = tts
        self.player = player
        self.clock = clock
        self.settings = settings
        self.emit = emit
        self._phrases: dict[tuple[str, str], np.ndarray] = {}  # (phrase, emotion) -> output-rate audio, made once

    async def speak(self, reply: Reply, fixed: str | None = None) -> None:
        """Speak ``reply`` (its ``record.user_text`` answered by the brain), or the ``fixed`` line (no LLM) in the
        persona's default emotion; returns once the player has played it all. Cancel it to stop."""
        rec = reply.record
        clauses: asyncio.Queue[str | None] = asyncio.Queue()
        make = self._think(reply, clauses) if fixed is None else self._say(reply, fixed, clauses)
        producer = asyncio.create_task(make)
        tts = self.tts.turn()
        resampler = StreamResampler(tts.sample_rate, self.player.sample_rate, "float32")
        try:
            while (clause := await clauses.get()) is not None:
                tag = len(reply.clauses)
                reply.clauses.append(clause)
                if rec.first_clause is None:
                    rec.first_clause = self.clock.now()
                try:
                    async for pcm in tts.synthesize(clause, rec.emotion):
                        if rec.tts_first_audio is None:
                            rec.tts_first_audio = self.clock.now()
                        await reply.released()  # a preemptive reply waits here, its first audio ready
                        self._enqueue(reply, to_int16(resampler.process(to_float32(pcm))), tag)
                except Exception as e:
                    log.exception("TTS failed")
                    rec.errors.append(f"tts: {e}")
                    self.emit(ErrorEvent("tts_error", str(e)))
                self.emit(TranscriptEvent("assistant", " ".join(reply.clauses), rec.turn_id, final=False,
                                          emotion=rec.emotion))
            await reply.released()
            if reply.clauses:
                self._enqueue(reply, to_int16(resampler.process(np.zeros(0, np.float32), last=True)), len(reply.clauses) - 1)
            self.player.finish()
            await producer
            await self.player.wait_played()
        finally:
            producer.cancel()
            rec.tts_backend = tts.last_used

    async def phrase(self, text: str, emotion: str) -> np.ndarray:
        """A short fixed phrase (a backchannel) as np.ndarray[int16] at the player's rate, synthesised once and
        cached.

        Raises:
            oviya.tts.TTSError: every TTS backend failed.
        """
        pcm = self._phrases.get((text, emotion))
        if pcm is None:
            resampler = StreamResampler(self.tts.sample_rate, self.player.sample_rate, "float32")
            chunks = [resampler.process(to_float32(c)) async for c in self.tts.synthesize(text, emotion)]
            pcm = self._phrases[(text, emotion)] = to_int16(np.concatenate(
                [*chunks, resampler.process(np.zeros(0, np.float32), last=True)]))
        return pcm

    def _enqueue(self, reply: Reply, pcm: np.ndarray, tag: int) -> None:
        reply.samples[tag] = reply.samples.get(tag, 0) + len(pcm)
        self.player.enqueue(pcm, (reply.record.turn_id, tag))

    async def _think(self, reply: Reply, clauses: asyncio.Queue[str | None]) -> None:
        """Brain → clauses. Always ends the queue with None so the speaking loop finishes."""
        rec = reply.record
        brain = self.brain
        plan = await asyncio.to_thread(brain.plan, rec.user_text)  # sentence embeddings: keep the loop free
        rec.route, rec.user_emotion, rec.emotion = plan.route, plan.user_emotion, plan.emotion
        rec.safety_category = plan.safety.category if plan.safety else None
        chunker = ClauseChunker(self.settings.clause_min_words, self.settings.first_clause_min_words)
        rec.llm_start = self.clock.now()
        try:
            sentences = 0
            async with aclosing(brain.stream(rec.user_text, plan)) as deltas:
                async for delta in deltas:
                    if rec.llm_first_token is None:
                        rec.llm_first_token = self.clock.now()
                    for clause in chunker.push(delta):
                        if plan.route == "llm" and (safe := brain.screen(clause)) is not None:
                            rec.safety_category = "unsafe_output"
                            self._put_text(safe, clauses)
                            return  # the rest of the unsafe reply is never generated
                        clauses.put_nowait(clause)
                        sentences += ends_sentence(clause)
                    if plan.route == "llm" and sentences >= self.settings.max_sentences:
                        return  # spoken replies stay short even when a small model rambles; stops generation
            for clause in chunker.flush():
                clauses.put_nowait(clause)
        except LLMError as e:  # every backend in the chain failed: the persona's fallback line
            log.warning("LLM chain failed: %s", e)
            rec.errors.append(f"llm: {e}")
            rec.route = "fallback"
            self.emit(ErrorEvent("llm_error", str(e)))
            if not reply.clauses and clauses.empty():
                self._put_text(brain.persona.fallback_line, clauses)
        except Exception as e:
            log.exception("LLM failed")
            rec.errors.append(f"llm: {e}")
            self.emit(ErrorEvent("llm_error", str(e)))
        finally:
            rec.llm_backend = brain.llm_backend if rec.route == "llm" else None
            clauses.put_nowait(None)

    async def _say(self, reply: Reply, text: str, clauses: asyncio.Queue[str | None]) -> None:
        """A fixed line instead of the brain's reply, in the persona's default emotion."""
        reply.record.emotion = self.brain.persona.default_emotion
        self._put_text(text, clauses)
        clauses.put_nowait(None)

    def _put_text(self, text: str, clauses: asyncio.Queue[str | None]) -> None:
        chunker = ClauseChunker(self.settings.clause_min_words, self.settings.first_clause_min_words)
        for clause in [*chunker.push(text), *chunker.flush()]:
            clauses.put_nowait(clause)
