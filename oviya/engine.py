"""The turn engine: audio frames (or typed text) in → audio frames and events out.

It knows nothing of Gradio, WebRTC or files, so the app, the eval harness and the notebooks drive the same code.
One engine per conversation. Input is handled inline (resampling and Silero VAD cost well under 1 ms per 32 ms
chunk); each reply runs as one cancellable task in which STT, the LLM and TTS stream into each other (after Kyutai
Unmute's ``unmute_handler.py``): the LLM's clauses go to TTS while later tokens are still being generated, and TTS
audio goes to a real-time :class:`~oviya.player.AudioPlayer`. Barge-in cancels the task and flushes the player.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections import deque
from contextlib import aclosing
from dataclasses import dataclass, field

import numpy as np

from oviya.audio import AudioFormatError, StreamResampler, to_float32, to_int16, to_mono
from oviya.brain.brain import Brain
from oviya.brain.clauses import ClauseChunker, ends_sentence
from oviya.clock import Clock, RealClock
from oviya.components import Components
from oviya.config import Settings
from oviya.events import (
    AudioOut, ErrorEvent, Event, State, StatusEvent, TranscriptEvent, TurnDone, TurnRecord,
)
from oviya.llm import GenerationParams
from oviya.player import AudioPlayer
from oviya.turn import EndReason, build_turn_detector
from oviya.vad import CHUNK_S, SAMPLE_RATE, StreamingVAD, VADChunk, VADEvent

log = logging.getLogger(__name__)


class AudioFlush:
    """Event: drop any reply audio buffered downstream (barge-in)."""


@dataclass
class _Reply:
    """Book-keeping of the reply being produced."""

    record: TurnRecord
    clauses: list[str] = field(default_factory=list)
    samples: dict[int, int] = field(default_factory=dict)  # clause index -> output samples synthesised
    played: dict[int, int] = field(default_factory=dict)  # clause index -> output samples released to the listener
    audio: np.ndarray | None = None  # the user's utterance, 16 kHz float32 (voice turns)
    continued: bool = False  # the user went on before Oviya spoke: merged into the next turn

    def spoken_text(self) -> str:
        """The words the listener heard: whole clauses, plus the played fraction of a clause cut short."""
        words: list[str] = []
        for i, clause in enumerate(self.clauses):
            total, done = self.samples.get(i, 0), self.played.get(i, 0)
            if total == 0 or done == 0:
                break
            w = clause.split()
            words += w if done >= total else w[: round(len(w) * done / total)]
            if done < total:
                break
        return " ".join(words)


class TurnEngine:
    """One conversation.

    Use as ``async with TurnEngine(components, settings) as engine:``; feed :meth:`push_audio` / :meth:`push_text`
    and read :meth:`next_event`.

    Args:
        components: the shared models (:func:`oviya.components.load_components`).
        settings: all tunables.
        clock: time source; a virtual clock makes turn logic testable without waiting.

    Attributes:
        transcript: every final line of the conversation (user and assistant), in order.
        records: the timing record of every finished turn.
    """

    def __init__(self, components: Components, settings: Settings, clock: Clock | None = None) -> None:
        self.c = components
        self.settings = settings
        self.clock = clock or RealClock()
        llm = settings.llm
        self.brain = Brain(components.llm, components.persona, settings.brain,
                           GenerationParams(llm.max_tokens, llm.temperature, llm.top_p))
        self.vad = StreamingVAD(components.vad, settings.vad)
        self.turn_detector = build_turn_detector(settings.turn)
        self.out_rate = settings.audio.output_sample_rate
        self.player = AudioPlayer(self.clock, self.out_rate, settings.audio.output_frame_ms,
                                  settings.audio.output_lead_ms / 1000, self._on_frame)
        self.transcript: list[TranscriptEvent] = []
        self.records: list[TurnRecord] = []
        self.state: State = "listening"
        self._events: asyncio.Queue[Event | AudioFlush] = asyncio.Queue()
        self._resampler: StreamResampler | None = None
        pre_s = (max(settings.vad.min_speech_ms, settings.turn.barge_in_min_ms) + settings.vad.speech_pad_ms) / 1000
        self._recent: deque[VADChunk] = deque(maxlen=math.ceil(pre_s / CHUNK_S) + 2)
        self._utterance: list[VADChunk] | None = None
        self._turn_start_s: float | None = None
        self._overlap_start_s: float | None = None  # user speech that began while Oviya was replying
        self._carry: _Reply | None = None  # a turn the user continued before Oviya answered
        self._reply: _Reply | None = None
        self._reply_task: asyncio.Task | None = None
        self._player_task: asyncio.Task | None = None
        self._turn_ids = itertools.count(1)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the playout task (also started on demand by the first reply)."""
        self._ensure_player()

    def _ensure_player(self) -> None:
        if self._player_task is None:
            self._player_task = asyncio.create_task(self.player.run(), name="oviya-player")

    async def aclose(self) -> None:
        """Cancel any reply and stop playout. The transcript and records stay readable."""
        for task in (self._reply_task, self._player_task):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._player_task = None

    async def __aenter__(self) -> "TurnEngine":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- inputs --------------------------------------------------------------------------------------------------
    def push_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Feed microphone audio of any frame size.

        Args:
            pcm: int16 or float32 samples, mono ``(n,)`` or ``(channels, n)`` / ``(n, channels)``.
            sample_rate: Hz (8 kHz … ``audio.max_input_sample_rate``); may change between calls.
        Raises:
            AudioFormatError: wrong type, dtype, rate, non-finite samples, or a frame longer than
                ``audio.max_input_frame_s``. Nothing of the session is lost.
        """
        a = self.settings.audio
        if not isinstance(pcm, np.ndarray):
            raise AudioFormatError(f"audio must be a numpy array, got {type(pcm).__name__}")
        if not isinstance(sample_rate, int) or not 8000 <= sample_rate <= a.max_input_sample_rate:
            raise AudioFormatError(f"sample rate must be an int in 8000..{a.max_input_sample_rate} Hz, got {sample_rate!r}")
        x = to_float32(to_mono(pcm))
        if len(x) > a.max_input_frame_s * sample_rate:
            raise AudioFormatError(f"audio frame of {len(x) / sample_rate:.2f} s exceeds {a.max_input_frame_s} s")
        if not np.all(np.isfinite(x)):
            raise AudioFormatError("audio contains NaN or infinite samples")
        if self._resampler is None or self._resampler.from_hz != sample_rate:
            self._resampler = StreamResampler(sample_rate, SAMPLE_RATE, "float32")
        for chunk, event in self.vad.push(self._resampler.process(np.clip(x, -1.0, 1.0))):
            self._on_chunk(chunk, event)

    def push_text(self, text: str) -> None:
        """A typed user turn, answered aloud like a spoken one (interrupts any reply in progress).

        Raises:
            ValueError: empty text or longer than ``brain.max_user_chars``.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text turn is empty")
        if len(text) > self.settings.brain.max_user_chars:
            raise ValueError(f"text turn too long: {len(text)} > {self.settings.brain.max_user_chars} characters")
        self._interrupt()
        now = self.clock.now()
        rec = TurnRecord(next(self._turn_ids), "text", speech_end=now, eot=now, end_reason="text")
        self._start_reply(_Reply(rec), text=text.strip())

    # --- outputs -------------------------------------------------------------------------------------------------
    async def next_event(self, timeout: float | None = None) -> Event | AudioFlush | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return await asyncio.wait_for(self._events.get(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return None

    def _emit(self, event: Event | AudioFlush) -> None:
        self._events.put_nowait(event)
        if isinstance(event, TranscriptEvent) and event.final:
            self.transcript.append(event)

    def _set_state(self, state: State) -> None:
        if state != self.state:
            self.state = state
            self._emit(StatusEvent(state))

    def _on_frame(self, pcm: np.ndarray, tag: object) -> None:
        reply = self._reply
        turn_id, clause = tag  # type: ignore[misc]
        if reply is not None and reply.record.turn_id == turn_id:
            reply.played[clause] = reply.played.get(clause, 0) + len(pcm)
            if reply.record.first_audio_out is None:
                reply.record.first_audio_out = self.clock.now()
                self._set_state("speaking")
        self._emit(AudioOut(pcm, self.out_rate))

    # --- turn-taking ---------------------------------------------------------------------------------------------
    def _on_chunk(self, chunk: VADChunk, event: VADEvent | None) -> None:
        seg = self.vad.segmenter
        self._recent.append(chunk)
        if self._utterance is not None:
            self._utterance.append(chunk)
        if event is not None and event.kind == "start" and self._turn_start_s is None:
            if self._reply is None:
                self._begin_user_turn(event.time_s)
            elif self._reply.record.first_audio_out is None:
                # Oviya has not spoken yet: the user is continuing their turn, so answer the whole of it later.
                self._carry, self._reply.continued = self._reply, True
                self._interrupt()
                self._begin_user_turn(event.time_s)
            else:
                self._overlap_start_s = event.time_s
        if self._overlap_start_s is not None:
            if not seg.speaking:
                self._overlap_start_s = None  # too short to interrupt (a backchannel or a noise)
            elif self.settings.turn.barge_in and (
                chunk.end_s - self._overlap_start_s >= self.settings.turn.barge_in_min_ms / 1000
            ):
                start, self._overlap_start_s = self._overlap_start_s, None
                self._interrupt()
                self._begin_user_turn(start)
        if self._turn_start_s is not None:
            reason = self.turn_detector.end_of_turn(seg, self._turn_start_s, chunk.end_s)
            if reason is not None:
                self._end_user_turn(reason, chunk)

    def _begin_user_turn(self, start_s: float) -> None:
        self._turn_start_s = start_s
        self._utterance = [c for c in self._recent]
        self._set_state("user_speaking")

    def _end_user_turn(self, reason: EndReason, chunk: VADChunk) -> None:
        seg = self.vad.segmenter
        now = self.clock.now()
        end_s = seg.last_speech_end_s if reason == "silence" and seg.last_speech_end_s is not None else chunk.end_s
        pad = self.settings.vad.speech_pad_ms / 1000
        chunks = [c for c in self._utterance or [] if c.end_s > self._turn_start_s - pad and c.start_s < end_s + pad]
        audio = np.concatenate([c.audio for c in chunks]) if chunks else np.zeros(0, np.float32)
        turn_id = next(self._turn_ids)
        if self._carry is not None:  # one turn, one id: the merged utterance replaces the continued one
            audio, turn_id, self._carry = np.concatenate([self._carry.audio, audio]), self._carry.record.turn_id, None
        self._turn_start_s, self._utterance = None, None
        # Input arrives in real time, so stream time maps to the clock by the offset of the current chunk.
        rec = TurnRecord(turn_id, "voice", speech_end=now - (chunk.end_s - end_s), eot=now, end_reason=reason)
        self._start_reply(_Reply(rec, audio=audio))

    def _start_reply(self, reply: _Reply, text: str | None = None) -> None:
        self._ensure_player()
        self._reply = reply
        self._set_state("thinking")
        self._reply_task = asyncio.create_task(self._run_reply(reply, text), name=f"oviya-turn-{reply.record.turn_id}")

    def _interrupt(self) -> None:
        """Barge-in: silence Oviya now and cancel the reply's STT/LLM/TTS work."""
        if self._reply_task is None or self._reply_task.done():
            return
        self.player.flush()
        self._emit(AudioFlush())
        self._reply_task.cancel()

    # --- the reply -----------------------------------------------------------------------------------------------
    async def _run_reply(self, reply: _Reply, text: str | None) -> None:
        rec = reply.record
        try:
            if text is None:
                text = await self._transcribe(reply)
                if not text:
                    return
            rec.user_text = text
            self._emit(TranscriptEvent("user", text, rec.turn_id, final=False))
            await self._speak(reply)
        except asyncio.CancelledError:
            rec.outcome = "continued" if reply.continued else "interrupted"
            raise
        finally:
            self._finish(reply)

    async def _transcribe(self, reply: _Reply) -> str:
        rec = reply.record
        rec.stt_start = self.clock.now()
        try:
            result = await asyncio.to_thread(self.c.stt.transcribe, reply.audio)
        except Exception as e:  # noqa: BLE001 - any STT failure ends this turn, never the session
            log.exception("STT failed")
            rec.errors.append(f"stt: {e}")
            self._emit(ErrorEvent("stt_error", str(e)))
            return ""
        finally:
            rec.stt_end = self.clock.now()
        return result.text

    async def _speak(self, reply: _Reply) -> None:
        rec = reply.record
        clauses: asyncio.Queue[str | None] = asyncio.Queue()
        producer = asyncio.create_task(self._think(reply, clauses))
        resampler = StreamResampler(self.c.tts.sample_rate, self.out_rate, "float32")
        try:
            while (clause := await clauses.get()) is not None:
                tag = len(reply.clauses)
                reply.clauses.append(clause)
                if rec.first_clause is None:
                    rec.first_clause = self.clock.now()
                try:
                    async for pcm in self.c.tts.synthesize(clause):
                        if rec.tts_first_audio is None:
                            rec.tts_first_audio = self.clock.now()
                        self._enqueue(reply, to_int16(resampler.process(to_float32(pcm))), tag)
                except Exception as e:  # noqa: BLE001 - skip the clause, keep the reply going
                    log.exception("TTS failed")
                    rec.errors.append(f"tts: {e}")
                    self._emit(ErrorEvent("tts_error", str(e)))
                self._emit(TranscriptEvent("assistant", " ".join(reply.clauses), rec.turn_id, final=False))
            if reply.clauses:
                self._enqueue(reply, to_int16(resampler.process(np.zeros(0, np.float32), last=True)), len(reply.clauses) - 1)
            self.player.finish()
            await producer
            await self.player.wait_played()
        finally:
            producer.cancel()

    def _enqueue(self, reply: _Reply, pcm: np.ndarray, tag: int) -> None:
        reply.samples[tag] = reply.samples.get(tag, 0) + len(pcm)
        self.player.enqueue(pcm, (reply.record.turn_id, tag))

    async def _think(self, reply: _Reply, clauses: asyncio.Queue[str | None]) -> None:
        """LLM → clauses. Always ends the queue with None so the speaker loop finishes."""
        rec = reply.record
        chunker = ClauseChunker(self.settings.brain.clause_min_words)
        rec.llm_start = self.clock.now()
        try:
            sentences = 0
            async with aclosing(self.brain.stream(rec.user_text)) as deltas:
                async for delta in deltas:
                    if rec.llm_first_token is None:
                        rec.llm_first_token = self.clock.now()
                    for clause in chunker.push(delta):
                        clauses.put_nowait(clause)
                        sentences += ends_sentence(clause)
                    if sentences >= self.settings.brain.max_sentences:
                        return  # spoken replies stay short even when a small model rambles; stops generation
            for clause in chunker.flush():
                clauses.put_nowait(clause)
        except Exception as e:  # noqa: BLE001 - the turn ends with what was said so far
            log.exception("LLM failed")
            rec.errors.append(f"llm: {e}")
            self._emit(ErrorEvent("llm_error", str(e)))
        finally:
            clauses.put_nowait(None)

    def _finish(self, reply: _Reply) -> None:
        """Commit what was said, publish the record, go back to listening. Runs on success, error and barge-in."""
        rec = reply.record
        rec.reply_text = reply.spoken_text()
        if rec.outcome is None:
            rec.outcome = "answered" if rec.reply_text else "no_speech" if not rec.user_text else "failed"
        if rec.user_text and rec.outcome != "continued":
            self.brain.commit(rec.user_text, rec.reply_text)
            self._emit(TranscriptEvent("user", rec.user_text, rec.turn_id))
            if reply.clauses:
                self._emit(TranscriptEvent("assistant", rec.reply_text, rec.turn_id,
                                           interrupted=rec.outcome == "interrupted"))
        self.records.append(rec)
        self._emit(TurnDone(rec))
        if self._reply is reply:
            self._reply = None
            self._set_state("user_speaking" if self._turn_start_s is not None else "listening")
