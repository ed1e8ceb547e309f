"""The turn engine: audio frames (or typed text) in → audio frames and events out.

It knows nothing of Gradio, WebRTC or files, so the app, the eval harness and the notebooks drive the same code.
One engine per conversation. Input is handled inline: resampling, echo cancellation, Silero VAD and the
:class:`~oviya.listener.Listener`'s end-of-turn policy (a Smart Turn call is ~60 ms, once per pause). Each reply
(:class:`~oviya.reply.Reply`, with its life-cycle state) runs as one cancellable task in which STT
(:mod:`oviya.transcriptions`), the LLM and TTS stream into each other (:class:`~oviya.speaker.Speaker`), into a
real-time :class:`~oviya.player.AudioPlayer`. The engine coordinates: it owns the conversation's tasks by name
(:mod:`oviya.tasks`) and hands the user's speech over a sounding reply to :class:`~oviya.talkover.TalkOver`
(docs/architecture.md, "Turn states").

Latency: STT starts speculatively at the first pause and is reused when the turn ends there. Barge-in: at the first
speech chunk while Oviya talks, playback pauses (nothing is lost); speech lasting ``barge_in.min_ms``, or a short
utterance that is not a backchannel ("yeah", "okay", …), interrupts her: the reply is cancelled and only the words
actually heard stay in the history. A backchannel or a noise resumes her where she stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

from oviya.aio import within
from oviya.audio import StreamResampler, checked_input
from oviya.brain.backchannel import BackchannelPolicy
from oviya.brain.brain import Brain
from oviya.brain.safety import CRISIS
from oviya.brain.session_memory import CallerMemory
from oviya.clock import Clock, RealClock
from oviya.components import Components
from oviya.config import Settings
from oviya.echo import EchoCanceller
from oviya.events import (
    AudioFlush,
    AudioOut,
    ErrorEvent,
    Event,
    State,
    StatusEvent,
    TranscriptEvent,
    TurnDone,
    TurnRecord,
)
from oviya.listener import (
    CandidateDropped,
    EndOfTurn,
    Listener,
    Paused,
    Resumed,
    SpeechCandidate,
    TurnStarted,
)
from oviya.llm import GenerationParams
from oviya.player import AudioPlayer
from oviya.preempt import Preemption
from oviya.reply import Reply
from oviya.speaker import Speaker
from oviya.talkover import TalkOver
from oviya.tasks import NamedTasks
from oviya.transcriptions import Transcriptions
from oviya.tuning import LiveTuning
from oviya.vad import SAMPLE_RATE

log = logging.getLogger(__name__)


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
        turn_gate: asked before each user turn is answered (the server's per-client rate limit); returns None to
            admit it, or ``(code, message)`` to refuse it with that error (the turn's outcome is ``refused``).
    """

    def __init__(self, components: Components, settings: Settings, clock: Clock | None = None) -> None:
        self.c = components
        self.settings = settings
        self.clock = clock or RealClock()
        llm = settings.llm
        self.brain = Brain(components.llm, components.persona, components.safety, components.identity,
                           components.emotion, settings.brain, GenerationParams(llm.max_tokens, llm.temperature, llm.top_p),
                           settings.memory)
        self.tasks = NamedTasks()  # reply, preempt, judge, spec_stt, partial, backchannel, memory_load, warm, player
        self.memory = CallerMemory(self.brain, components.llm, settings.memory, self.tasks)
        smart = components.smart_turn.probability if components.smart_turn is not None else None
        self.listener = Listener(components.vad, settings, smart)
        self.out_rate = settings.audio.output_sample_rate
        self.player = AudioPlayer(self.clock, self.out_rate, settings.audio.output_frame_ms,
                                  settings.audio.output_lead_ms / 1000, self._on_frame)
        self.stt = Transcriptions(components.stt, self.clock, self.tasks, settings.limits.max_stt_runs_per_turn,
                                  settings.stt.partial_interval_ms)
        self.speaker = Speaker(self.brain, components.tts, self.player, self.clock, settings.brain, self._emit)
        bi = settings.barge_in
        self.echo = EchoCanceller(self.out_rate) if bi.echo_guard == "aec" else None
        self.preempt = Preemption(settings.turn, self.clock, self.tasks, self._run_reply, self.brain.warm_turn)
        self.talk = TalkOver(bi, self.clock, self.player, self.echo, self.listener, self.stt, self.tasks, self._emit,
                             lambda: self._reply, self._interrupt, self._start_reply, self._set_state)
        self._my_backchannel = BackchannelPolicy(settings.backchannel)
        self._backchannels_said: list[str] = []  # Oviya's backchannels in the open user turn
        self.transcript: list[TranscriptEvent] = []
        self.records: list[TurnRecord] = []
        self.state: State = "listening"
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._resampler: StreamResampler | None = None
        self._turn_id = 0
        self._reply: Reply | None = None
        self._carry: Reply | None = None  # a turn the user continued before Oviya answered
        self.turn_gate: Callable[[], tuple[str, str] | None] | None = None
        self._admitted_turn = 0
        self.tuning = LiveTuning(settings, components.smart_turn is not None, components.emotion)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the playout task (also started on demand by the first reply)."""
        self._ensure_player()

    def _ensure_player(self) -> None:
        if not self.tasks.running("player"):
            self.tasks.start("player", self.player.run())

    async def stop(self) -> None:
        """Cancel any reply and stop playout. The transcript and records stay readable; a reply cut short here is
        recorded with outcome ``hangup``. Idempotent."""
        await self.tasks.aclose(last=("player",))  # a reply cut short still reads what was played

    async def aclose(self) -> None:
        """:meth:`stop`, then save the user's notes (with a memory key; an LLM summary: may take seconds)."""
        await self.stop()
        await self.memory.save()

    async def __aenter__(self) -> TurnEngine:
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
            oviya.audio.AudioFormatError: wrong type, dtype, rate, non-finite samples, or a frame longer than
                ``audio.max_input_frame_s``. Nothing of the session is lost.
        """
        a = self.settings.audio
        x = checked_input(pcm, sample_rate, a.max_input_sample_rate, a.max_input_frame_s)
        if self._resampler is None or self._resampler.from_hz != sample_rate:
            self._resampler = StreamResampler(sample_rate, SAMPLE_RATE, "float32")
        x16 = self._resampler.process(x)
        if self.echo is not None:
            x16 = self.echo.process(x16, self.clock.now())
        for vc, events in self.listener.push(x16):
            self._on_chunk(vc.end_s, events)

    def push_text(self, text: str) -> None:
        """A typed user turn, answered aloud like a spoken one (interrupts any reply in progress once
        :attr:`turn_gate` admits it; a refused one leaves the reply alone and is recorded as ``refused``).

        Raises:
            ValueError: empty text or longer than ``brain.max_user_chars``.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text turn is empty")
        if len(text) > self.settings.brain.max_user_chars:
            raise ValueError(f"text turn too long: {len(text)} > {self.settings.brain.max_user_chars} characters")
        now = self.clock.now()
        self._turn_id += 1
        self._apply_tuning()
        rec = TurnRecord(self._turn_id, "text", speech_end=now, eot=now, end_reason="text", tuning=self.tuning.in_effect)
        if self.turn_gate is not None:
            if (refusal := self.turn_gate()) is not None:
                rec.user_text = text.strip()
                self._refuse(rec, refusal)
                self.records.append(rec)
                self._emit(TurnDone(rec))
                return
            self._admitted_turn = rec.turn_id
        self._interrupt()
        self._start_reply(Reply(rec), text=text.strip())

    def _apply_tuning(self) -> None:
        """At a user turn's start: the changes requested from :attr:`tuning` since the last turn take effect."""
        if (s := self.tuning.take()) is None:
            return
        if s.llm.chain != self.settings.llm.chain:  # the chain's models were loaded in the call's starting order
            loaded = self.tuning.base.llm.chain
            self.brain.llm = self.c.llm.reordered([loaded.index(name) for name in s.llm.chain])
        self.settings = s
        self.listener.retune(s)
        self.talk.retune(s.barge_in)
        self._my_backchannel.settings = s.backchannel
        self.brain.settings = self.speaker.settings = s.brain

    # --- outputs -------------------------------------------------------------------------------------------------
    async def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after ``timeout`` seconds without one (``0``: only an event already waiting)."""
        if timeout == 0:
            return None if self._events.empty() else self._events.get_nowait()
        try:
            return await within(self._events.get(), timeout)
        except TimeoutError:
            return None

    def _emit(self, event: Event) -> None:
        self._events.put_nowait(event)
        if isinstance(event, TranscriptEvent) and event.final:
            self.transcript.append(event)

    def _set_state(self, state: State) -> None:
        if state != self.state:
            self.state = state
            self._emit(StatusEvent(state))

    def _on_frame(self, pcm: np.ndarray, tag: object, due: float) -> None:
        reply = self._reply
        if reply is not None and reply.record.turn_id == tag[0] and reply.state == "thinking":  # type: ignore[index]
            reply.record.first_audio_out = self.clock.now()
            reply.to("speaking")
            self._set_state("speaking")
        if self.echo is not None:
            self.echo.on_output(pcm, due)
        self._emit(AudioOut(pcm, self.out_rate, due))

    # --- turn-taking ---------------------------------------------------------------------------------------------
    def _speaking(self) -> bool:
        """Oviya's reply has started sounding (possibly paused by the user's onset)."""
        return self._reply is not None and self._reply.sounding

    def _on_chunk(self, now_s: float, events: list) -> None:
        now = self.clock.now()

        def clock_at(t_s: float) -> float:  # input arrives in real time: stream time maps by the current offset
            return now - (now_s - t_s)

        for ev in events:
            if isinstance(ev, SpeechCandidate):
                self.talk.onset(clock_at(ev.time_s))
            elif isinstance(ev, CandidateDropped):
                self.talk.onset_dropped()
            elif isinstance(ev, TurnStarted):
                self._on_turn_started()
            elif isinstance(ev, Paused):
                if self.talk.open:
                    self.talk.paused(ev.audio, self._turn_id, clock_at(ev.end_s), now)
                elif self.settings.stt.speculative_after_ms is not None and self.stt.budget_left() > 1:
                    spec = self.stt.speculate(ev.audio, ev.end_s)
                    spec.add_done_callback(lambda task, end_s=ev.end_s: self._speculated(task, end_s))
            elif isinstance(ev, Resumed):
                self.stt.drop_speculation()  # a newer pause will be transcribed
                self.preempt.drop()
            elif isinstance(ev, EndOfTurn):
                self._on_end_of_turn(ev, clock_at(ev.end_s), now)
        self.talk.voiced(now)
        self._maybe_backchannel(now_s)
        self._maybe_partial()

    def _speculated(self, task: asyncio.Task, end_s: float) -> None:
        """The speculative transcript of the pause at ``end_s`` is ready: prepare the reply while the turn may still
        go on (:class:`~oviya.preempt.Preemption`) — only in a plain turn (no reply of hers, no merged one)."""
        if (self.stt.speculating(end_s) and self._reply is None and self._carry is None and not self.talk.open
                and self.listener.in_turn and not self.tasks.closed):
            self.preempt.start(task, self._turn_id)

    def _maybe_backchannel(self, now_s: float) -> None:
        """A short "mm-hmm" in a pause of a long user turn while Oviya is silent (never over her own reply)."""
        if self._reply is not None or not self.listener.in_turn or self.tasks.running("backchannel"):
            return
        phrase = self._my_backchannel.decide(now_s, self.listener.last_speech_end_s, self.listener.pause_s,
                                             self.listener.voiced_s)
        if phrase is not None:
            self._backchannels_said.append(phrase)
            self.tasks.start("backchannel", self._say_backchannel(phrase))

    async def _say_backchannel(self, phrase: str) -> None:
        try:
            pcm = await self.speaker.phrase(phrase, self.settings.backchannel.emotion)
            if self._reply is None:  # the turn may have ended while it was synthesised: then stay quiet
                self._ensure_player()
                self.player.enqueue(pcm, ("backchannel", phrase))
                self.player.finish()
        except Exception:
            log.exception("backchannel failed")

    def _on_turn_started(self) -> None:
        if self._reply is None:
            self._new_turn()
        elif not self._speaking() and self._reply.record.end_reason != "max_length":
            # Oviya has not spoken yet: the user is continuing their turn, so answer the whole of it later. (Not
            # after a turn cut at turn.max_utterance_s: merging would undo the cut; that speech is judged as
            # talk-over instead.)
            if self._reply.audio is not None:
                self._carry, self._reply.continued = self._reply, True
                self.listener.carried_s = len(self._reply.audio) / SAMPLE_RATE  # one turn, one max_utterance_s
            self._interrupt()
            self._set_state("user_speaking")
        elif self.settings.barge_in.enabled:
            self.talk.begin()
            self._new_turn(announce=False)  # Oviya may go on (a backchannel): the status waits for the verdict

    def _new_turn(self, announce: bool = True) -> None:
        self._turn_id += 1
        self._apply_tuning()
        self.stt.new_turn()
        if announce:
            self._set_state("user_speaking")

    def _on_end_of_turn(self, ev: EndOfTurn, speech_end: float, now: float) -> None:
        stt = self.stt.take_speculation(ev.end_s)
        turn_id, audio, regions = self._turn_id, ev.audio, ev.regions
        if self._carry is not None:  # one turn, one id: the merged utterance replaces the continued one
            shift = len(self._carry.audio) / SAMPLE_RATE
            regions = self._carry.regions + tuple((round(a + shift, 3), round(b + shift, 3)) for a, b in regions)
            audio, turn_id, stt = np.concatenate([self._carry.audio, audio]), self._carry.record.turn_id, None
            self._carry = None
        held = self.preempt.take(stt)  # the reply prepared at this very pause, from this very transcript
        refusal = self._gate(turn_id) if held is not None else None  # else asked when the reply starts
        if refusal is not None:
            self.tasks.cancel("reply")  # still held: it ends unheard
            held = None
        rec = held.record if held is not None else TurnRecord(turn_id, "voice", stt_reused=stt is not None)
        rec.speech_end, rec.eot, rec.end_reason, rec.eot_probability = speech_end, now, ev.reason, ev.probability
        rec.backchannels_said, self._backchannels_said = self._backchannels_said, []
        self.preempt.account(rec)
        if ev.reason == "max_length":
            limit = self.settings.turn.max_utterance_s
            self._emit(ErrorEvent("max_utterance", f"your turn was ended after {limit:.0f} s of speech; "
                                                   "Oviya answers what she heard"))
        if refusal is not None:
            self._refuse(rec, refusal)
            self._finish(Reply(rec, audio=audio, regions=regions))
            return
        if held is not None:
            held.audio, held.regions = audio, regions
            self._release(held)
            return
        reply = Reply(rec, audio=audio, regions=regions, stt=stt)
        if self.talk.take():
            self.talk.judge(reply)
        else:
            self._start_reply(reply)

    def _release(self, reply: Reply) -> None:
        """The turn ended at the pause the held reply answers: it becomes the reply, heard from now on."""
        self._become_reply(reply)
        self._emit(TranscriptEvent("user", reply.record.user_text, reply.record.turn_id, final=False))
        reply.hold.set()

    def _interrupt(self) -> None:
        """Silence Oviya now and cancel the reply's STT/LLM/TTS work."""
        if not self.tasks.running("reply"):
            return
        self.player.flush()
        if self.echo is not None:
            self.echo.forget(self.clock.now())
        self._emit(AudioFlush())
        self.tasks.cancel("reply")

    # --- transcription -------------------------------------------------------------------------------------------
    def _maybe_partial(self) -> None:
        """The user's words so far as a partial transcript line (:meth:`Transcriptions.maybe_partial`)."""
        lst = self.listener
        if not lst.in_turn or self.talk.open or not lst.speaking:
            return
        turn_id, carry = self._turn_id, self._carry

        def audio() -> np.ndarray:  # a user continuing a turn: the partial covers all of it
            return lst.audio_so_far() if carry is None else np.concatenate([carry.audio, lst.audio_so_far()])

        def show(text: str) -> None:
            if lst.in_turn and self._turn_id == turn_id:
                self._emit(TranscriptEvent("user", text, turn_id, final=False))

        self.stt.maybe_partial(lst.voiced_s, audio, show)

    # --- the reply -----------------------------------------------------------------------------------------------
    def _start_reply(self, reply: Reply, text: str | None = None) -> None:
        self._become_reply(reply)
        self.tasks.start("reply", self._run_reply(reply, text))

    def _become_reply(self, reply: Reply) -> None:
        """``reply`` is the one Oviya is answering with (started now, or released from its hold)."""
        reply.record.tuning = self.tuning.in_effect
        self._ensure_player()
        self._reply = reply
        self._set_state("thinking")

    async def _run_reply(self, reply: Reply, text: str | None) -> None:
        rec = reply.record
        try:
            if not reply.held and (refusal := self._gate(rec.turn_id)) is not None:  # held: asked at release
                self._refuse(rec, refusal)
                return
            if text is None:
                try:
                    text = (await self.stt.transcript_of(reply)).text
                except Exception as e:
                    log.exception("STT failed")
                    rec.errors.append(f"stt: {e}")
                    rec.route = "fallback"
                    self._emit(ErrorEvent("stt_error", str(e)))
                    await self.speaker.speak(reply, fixed=self.brain.persona.not_heard_line)  # the user hears why
                    return
                if not text:
                    return
            rec.user_text = text
            if not reply.held:
                self._emit(TranscriptEvent("user", text, rec.turn_id, final=False))
            await self.speaker.speak(reply)
        except asyncio.CancelledError:
            if not reply.held:  # a held reply dropped unheard has no outcome: it never happened
                rec.outcome = "continued" if reply.continued else "hangup" if self.tasks.closed else "interrupted"
            raise
        finally:
            self._finish(reply)

    def _gate(self, turn_id: int) -> tuple[str, str] | None:
        """The server's turn gate, asked once per user turn (a continued turn comes back with its id: counted
        once): None to admit, else the refusal."""
        if turn_id == self._admitted_turn or self.turn_gate is None:
            return None
        if (refusal := self.turn_gate()) is None:
            self._admitted_turn = turn_id
        return refusal

    def _refuse(self, rec: TurnRecord, refusal: tuple[str, str]) -> None:
        """The turn gate refused the turn: its record says why, and so does an error event."""
        rec.outcome = "refused"
        rec.errors.append(": ".join(refusal))
        self._emit(ErrorEvent(*refusal))

    def _finish(self, reply: Reply) -> None:
        """Commit what was said, publish the record, go back to listening. Runs on success, error and barge-in;
        not for a preemptive reply dropped unheard (it never happened)."""
        if reply.held:
            return
        rec = reply.record
        heard = {i: self.player.heard_samples((rec.turn_id, i)) for i in range(len(reply.clauses))}
        rec.reply_text = reply.spoken_text(heard)
        if rec.outcome is None:
            rec.outcome = "answered" if rec.reply_text else "no_speech" if not rec.user_text else "failed"
        reply.to("interrupted" if rec.outcome in ("interrupted", "continued", "hangup") else "done")
        if rec.outcome != "continued":
            if rec.user_text:
                if self.brain.commit(rec.user_text, rec.reply_text,
                                     crisis=rec.route == "safety" and rec.safety_category in CRISIS):
                    self.memory.rewarm()  # the system prompt gained or lost the crisis follow-up
                self._emit(TranscriptEvent("user", rec.user_text, rec.turn_id))
            if reply.clauses:
                self._emit(TranscriptEvent("assistant", rec.reply_text, rec.turn_id,
                                           interrupted=rec.outcome == "interrupted", emotion=rec.emotion))
        self.records.append(rec)
        self._emit(TurnDone(rec, reply.audio, reply.regions))
        if self._reply is reply:
            self._reply = None
            self.talk.take()
            self._set_state("user_speaking" if self.listener.in_turn else "listening")
