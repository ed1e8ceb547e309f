"""Talk-over: the user's voice while Oviya's reply sounds (docs/architecture.md, "Turn states").

At the first speech chunk her playback pauses (nothing is lost: the audio stays queued). If the onset comes to
nothing she resumes after ``barge_in.resume_after_ms`` of quiet. Speech lasting ``barge_in.min_ms`` interrupts her
whatever it says; a shorter utterance is transcribed at its first pause and judged by the
:class:`~oviya.overlap.OverlapJudge`: a barge-in is answered as the user's turn, a backchannel ("yeah", "okay"), her
own echo or a noise lets her go on where she stopped. While echo is being cancelled, a very short overlap is taken
for residual echo without asking STT (``barge_in.echo_min_ms``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

from oviya.clock import Clock
from oviya.config import BargeInSettings
from oviya.echo import EchoCanceller
from oviya.events import AudioFlush, Event, State, TurnRecord
from oviya.listener import Listener
from oviya.overlap import OverlapJudge
from oviya.player import AudioPlayer
from oviya.reply import Reply
from oviya.tasks import NamedTasks
from oviya.transcriptions import Transcriptions

log = logging.getLogger(__name__)


class TalkOver:
    """One conversation's talk-over handling; the engine hands it the listener's news and asks its verdicts.

    Args:
        settings: the ``barge_in`` section.
        clock: the engine's clock (s).
        player, echo, listener, stt, tasks: the conversation's player, echo canceller (None when off), listener,
            transcriptions and named tasks (the verdict runs as the task ``judge``).
        emit: the engine's event sink (``AudioFlush`` when her audio pauses).
        current: the reply in progress, if any.
        interrupt: stop the reply in progress for good (flush its audio, cancel its work).
        answer: answer a user turn (a barge-in's words).
        set_state: the engine's state change.

    Attributes:
        open: a user turn began over a sounding reply and awaits its verdict.
    """

    def __init__(self, settings: BargeInSettings, clock: Clock, player: AudioPlayer, echo: EchoCanceller | None,
                 listener: Listener, stt: Transcriptions, tasks: NamedTasks, emit: Callable[[Event], None],
                 current: Callable[[], Reply | None], interrupt: Callable[[], None],
                 answer: Callable[[Reply], None], set_state: Callable[[State], None]) -> None:
        self.s = settings
        self.clock, self.player, self.echo, self.listener, self.stt, self.tasks = clock, player, echo, listener, stt, tasks
        self.emit, self.current, self.interrupt, self.answer, self.set_state = emit, current, interrupt, answer, set_state
        self.verdicts = OverlapJudge(settings)
        self.open = False
        self._resume_timer: asyncio.TimerHandle | None = None

    def retune(self, settings: BargeInSettings) -> None:
        """New ``barge_in`` settings from the next decision on (a call tuned live)."""
        self.s = settings
        self.verdicts = OverlapJudge(settings)

    # --- the listener's news ---------------------------------------------------------------------------------------
    def onset(self, at: float) -> None:
        """A speech candidate began at clock time ``at``: hold a reply not yet sounding (the user may be going on),
        pause one that sounds."""
        self._cancel_resume()
        reply = self.current()
        if reply is None:
            return
        if not reply.sounding:
            self.player.pause()
        elif self.s.enabled and self.s.pause_on_onset and not self.player.paused:
            self._pause(reply, at)

    def onset_dropped(self) -> None:
        """The candidate was not speech: resume after a quiet moment (a real onset often flickers above and below
        the threshold), unless a verdict is pending."""
        if self.current() is not None and self.player.paused and not self.listener.in_turn \
                and not self.tasks.running("judge"):
            self._resume_timer = asyncio.get_running_loop().call_later(self.s.resume_after_ms / 1000, self.resume)

    def begin(self) -> None:
        """A user turn began over the sounding reply."""
        self.open = True

    def voiced(self, now: float) -> None:
        """After each chunk: speech over her lasting ``min_ms`` is a barge-in whatever it says."""
        if self.open and self.listener.in_turn and self.listener.voiced_s >= self.s.min_ms / 1000:
            self.barge_in(now)

    def paused(self, audio: np.ndarray, turn_id: int, speech_end: float, now: float) -> None:
        """The talk-over paused: judge it now rather than wait for the end-of-turn policy, so a backchannel holds
        her up only for one pause and one short transcription."""
        voiced = self.listener.voiced_s
        self.listener.discard()
        self.take()
        if self.verdicts.residual_echo(voiced, self.echo is not None and self.echo.echo_present):
            self.resume()
            return
        rec = TurnRecord(turn_id, "voice", speech_end=speech_end, eot=now, end_reason="overlap")
        self.judge(Reply(rec, audio=audio))

    def take(self) -> bool:
        """Close the open talk-over (handed to a verdict, or settled by a barge-in or the reply's end); returns
        whether one was open. The one place :attr:`open` is cleared."""
        was, self.open = self.open, False
        return was

    # --- verdicts --------------------------------------------------------------------------------------------------
    def judge(self, reply: Reply) -> None:
        """Transcribe the talk-over ``reply`` holds and act on the verdict, as the task ``judge``."""
        self.tasks.start("judge", self._judge(reply))

    async def _judge(self, reply: Reply) -> None:
        """A barge-in is answered; a backchannel or her echo is noted in her reply's record and she goes on, as she
        does on a noise. If it cannot be transcribed she goes on too: a paused reply nobody resumes would hold the
        call silent."""
        try:
            result = await self.stt.transcript_of(reply)
        except Exception as e:  # noqa: BLE001 - any STT failure: what was said is unknown
            log.warning("STT failed on talk-over (%s); the reply goes on", e)
            self.resume()
            return
        current = self.current()
        verdict = self.verdicts.judge(result.text, " ".join(current.clauses) if current is not None else "")
        if verdict == "barge_in":
            self.barge_in(self.clock.now())
            self.answer(reply)
            return
        if current is not None and verdict != "noise":
            current.record.backchannels.append(result.text)
        self.resume()

    def barge_in(self, now: float) -> None:
        """The user interrupts: stop Oviya for good; the user's turn goes on."""
        reply = self.current()
        if reply is not None and reply.record.barge_in_stop is None:
            reply.record.barge_in_stop = now
        self.take()
        self.interrupt()
        self.set_state("user_speaking")

    # --- her playback ----------------------------------------------------------------------------------------------
    def _pause(self, reply: Reply, onset: float) -> None:
        """Silence her at a possible user onset (within one VAD chunk); the audio stays queued."""
        if reply.state == "speaking":  # (after a barge-in's flush it stays paused until the reply ends)
            reply.to("paused")
        self.player.pause()
        if self.echo is not None:
            self.echo.forget(self.clock.now())
        self.emit(AudioFlush())
        if reply.record.barge_in_onset is None:
            reply.record.barge_in_onset, reply.record.barge_in_stop = onset, self.clock.now()

    def resume(self) -> None:
        """Let her go on where she stopped (not while the user's turn is open)."""
        self._cancel_resume()
        reply = self.current()
        if reply is not None and self.player.paused and not self.listener.in_turn:
            self.player.resume()
            if reply.state == "paused":
                reply.to("speaking")

    def _cancel_resume(self) -> None:
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
