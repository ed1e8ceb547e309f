"""Preemption at a pause: the reply prepared before the end-of-turn decision (issue 16, lever 1; LiveKit Agents
calls it preemptive generation). ``turn.preemptive``: ``reply`` (below), ``prompt`` (only the LLM's prompt for the
words so far, at every pause) or ``none``.

At a pause inside the user's turn the engine transcribes speculatively (:class:`~oviya.transcriptions.Transcriptions`).
When that transcript is ready and looks finished, :class:`Preemption` starts the whole reply — brain, clauses, the
first clause's TTS — with its audio **held** (:attr:`oviya.reply.Reply.hold`): the LLM's prompt processing and first
tokens run while the end-of-turn decision is still pending. If the turn ends at that pause, its transcript is the
same one (same audio) and the held reply is released to the player at once. If the user goes on, it is cancelled
unheard: never played, never in the history, the transcript or the turn records; only the time it ran is counted
(``TurnRecord.preempt_wasted_ms``).

A transcript ending in one of ``turn.unfinished_words`` ("and", "the", "um" …), a comma or an ellipsis gets no
preemptive reply — the user is likely to go on, and on two cores a wasted reply delays the real one — only the
LLM's prompt for the words so far (:meth:`oviya.brain.brain.Brain.warm_turn`): when the turn ends, the reply's
prompt is then computed only from where the words differ. (Measured here: the speculative transcript of the last
pause is rarely ready before Smart Turn's verdict, ~224 ms into the pause, so most of what preemption buys on this
CPU is that prompt computed during the user's earlier pauses; README, "Measured here".)
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from oviya.clock import Clock
from oviya.config import TurnSettings
from oviya.events import TurnRecord
from oviya.reply import Reply
from oviya.tasks import NamedTasks

_WORD = re.compile(r"[a-z']+")
log = logging.getLogger(__name__)


class Preemption:
    """Owns the held reply of the open user turn (the task ``preempt``).

    Args:
        settings: ``turn`` (``preemptive``: ``reply`` | ``prompt`` | ``none``; ``unfinished_words``).
        clock: the engine's clock.
        tasks: the conversation's tasks.
        run_reply: the engine's reply pipeline, ``run_reply(reply, text)``.
        warm_prompt: blocking, computes the LLM prompt for the user's words so far (``Brain.warm_turn``).
    """

    def __init__(self, settings: TurnSettings, clock: Clock, tasks: NamedTasks,
                 run_reply: Callable[[Reply, str], Coroutine[Any, Any, None]],
                 warm_prompt: Callable[[str], None]) -> None:
        self.settings = settings
        self.clock = clock
        self.tasks = tasks
        self.run_reply = run_reply
        self.warm_prompt = warm_prompt
        self.reply: Reply | None = None
        self._stt: asyncio.Task | None = None  # the speculative transcription the held reply answers
        self._started = 0.0
        self._dropped = 0
        self._wasted_s = 0.0

    def unfinished(self, text: str) -> bool:
        """The transcript reads as cut short: a trailing comma, ellipsis or one of ``turn.unfinished_words``."""
        stripped = text.rstrip()
        if stripped.endswith((",", "...", "…", "-")):
            return True
        words = _WORD.findall(stripped.lower())
        return bool(words) and words[-1] in self.settings.unfinished_words

    def start(self, stt: asyncio.Task, turn_id: int) -> None:
        """Prepare the reply to the finished speculative transcription ``stt`` (result ``(transcript, start,
        end)``) — or, when the text looks unfinished, only the LLM's prompt for it (the task ``preempt`` either
        way) — unless preemption is off or the transcription failed or was empty."""
        if self.settings.preemptive == "none" or stt.cancelled() or stt.exception() is not None:
            return
        transcript, stt_start, stt_end = stt.result()
        if not transcript.text:
            return
        self.drop()
        if self.settings.preemptive == "prompt" or self.unfinished(transcript.text):
            # One prompt at a time: a warm-up's thread cannot be stopped, and queued ones would delay the reply.
            if not self.tasks.running("preempt"):
                self.tasks.start("preempt", self._warm(transcript.text))
            return
        rec = TurnRecord(turn_id, "voice", stt_start=stt_start, stt_end=stt_end, stt_reused=True,
                         stt_backend=transcript.backend)
        self.reply = Reply(rec, stt=stt, hold=asyncio.Event())
        self._stt, self._started = stt, self.clock.now()
        self.tasks.start("preempt", self.run_reply(self.reply, transcript.text))

    async def _warm(self, text: str) -> None:
        try:
            await asyncio.to_thread(self.warm_prompt, text)
        except Exception:  # only a head start was lost: the reply computes its prompt anyway
            log.warning("prompt warm-up for the words so far failed", exc_info=True)

    def drop(self) -> None:
        """The user went on (or the turn ended elsewhere): cancel the held reply unheard."""
        if self.reply is None:
            return
        self.tasks.cancel("preempt")
        self._dropped += 1
        self._wasted_s += self.clock.now() - self._started
        self.reply = self._stt = None

    def take(self, stt: asyncio.Task | None) -> Reply | None:
        """At the end of the turn: the held reply if it answers the transcription ``stt`` the turn ended with (it
        becomes the task ``reply``; the caller fills its record and releases it), else None (any held one is
        dropped)."""
        reply = self.reply
        if reply is None or stt is None or stt is not self._stt:
            self.drop()
            return None
        self.tasks.rename("preempt", "reply")
        reply.record.preempt = "reused"
        self.reply = self._stt = None
        return reply

    def account(self, rec: TurnRecord) -> None:
        """Move the open turn's dropped-reply counts into its record ``rec``, and start counting afresh."""
        rec.preempts_dropped, rec.preempt_wasted_ms = self._dropped, round(self._wasted_s * 1000, 1)
        self._dropped, self._wasted_s = 0, 0.0
