"""Transcriptions of one conversation: speculative (at the first pause), partial (while the user speaks) and final.

STT runs in a worker thread (a Whisper call cannot be interrupted); its asyncio task can be cancelled or replaced
by name (:class:`~oviya.tasks.NamedTasks`) while the thread finishes on its own, and :attr:`Transcriptions.busy`
counts threads, not tasks, so a partial transcript never competes with a transcription still running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from oviya.clock import Clock
from oviya.reply import Reply
from oviya.stt import Transcriber, Transcript
from oviya.tasks import NamedTasks


class Transcriptions:
    """Starts and budgets the STT calls of the open user turn.

    Args:
        stt: the speech-to-text stage.
        clock: the engine's clock (the timing record's ``stt_start`` / ``stt_end``).
        tasks: the conversation's tasks.
        max_runs: ``limits.max_stt_runs_per_turn``: transcriptions one user turn may start (a talker who never
            pauses must not keep the STT busy for everyone).
        partial_interval_ms: ``stt.partial_interval_ms``: speech between partial transcripts (None: none).

    Attributes:
        runs: transcriptions of the open user turn (merged continuations included).
        busy: STT threads still running.
    """

    def __init__(self, stt: Transcriber, clock: Clock, tasks: NamedTasks, max_runs: int,
                 partial_interval_ms: float | None = None) -> None:
        self.stt = stt
        self.clock = clock
        self.tasks = tasks
        self.max_runs = max_runs
        self.partial_interval_s = None if partial_interval_ms is None else partial_interval_ms / 1000
        self.runs = 0
        self.busy = 0
        self._partial_at = 0.0  # voiced seconds of the open turn at its last partial transcript
        self._spec_end_s: float | None = None  # stream time of the pause the running "spec_stt" task transcribes

    def new_turn(self) -> None:
        self.runs = 0
        self._partial_at = 0.0

    def speculate(self, audio: np.ndarray, end_s: float) -> asyncio.Task:
        """Transcribe the turn so far (np.ndarray[float32], 16 kHz mono), paused at stream time ``end_s`` (s), as
        the task ``spec_stt``, in case the turn ends at this pause (a newer pause's replaces it). Returns the task
        (see :meth:`start`)."""
        self._spec_end_s = end_s
        return self.start(audio, "spec_stt")

    def speculating(self, end_s: float) -> bool:
        """The speculative transcription of the pause at stream time ``end_s`` is still the current one."""
        return self._spec_end_s == end_s

    def drop_speculation(self) -> None:
        """The user went on: the speculative transcription's pause was not the end."""
        self._spec_end_s = None
        self.tasks.cancel("spec_stt")

    def take_speculation(self, end_s: float) -> asyncio.Task | None:
        """At the end of the turn (its speech ended at stream time ``end_s``): the speculative transcription if it
        covers exactly that speech (adopted: the reply owns it from now on), else None; any other is dropped."""
        task = self.tasks.adopt("spec_stt") if self._spec_end_s == end_s else None
        self.drop_speculation()
        return task

    def maybe_partial(self, voiced_s: float, audio: Callable[[], np.ndarray], show: Callable[[str], None]) -> None:
        """Start a partial transcript of the open turn once per ``partial_interval_ms`` of its speech
        (``voiced_s``), only when no other transcription is running (off the hot path) and never with the turn's
        last run of its budget (kept for its final transcript). ``audio()`` gives the turn so far
        (np.ndarray[float32], 16 kHz mono); ``show`` gets the text when it is ready and not empty."""
        if self.partial_interval_s is None or self.busy or self.budget_left() <= 1:
            return
        if voiced_s - self._partial_at < self.partial_interval_s:
            return
        self._partial_at = voiced_s

        def done(t: asyncio.Task) -> None:
            if not t.cancelled() and t.exception() is None and (text := t.result()[0].text):
                show(text)

        self.start(audio(), "partial").add_done_callback(done)

    def budget_left(self) -> int:
        """Transcriptions the open user turn may still start."""
        return self.max_runs - self.runs

    def start(self, audio: np.ndarray, name: str | None = None) -> asyncio.Task:
        """Transcribe ``audio`` (np.ndarray[float32], shape (n,), 16 kHz mono) as the task ``name`` (``spec_stt``,
        ``partial``; None: a turn's final transcription, owned until it ends).

        Returns:
            The task; its result is ``(transcript, start, end)`` on the engine's clock (s). It raises what the STT
            raised.
        """
        start = self.clock.now()
        self.runs += 1
        job = asyncio.ensure_future(asyncio.to_thread(self.stt.transcribe, audio))
        self.busy += 1
        job.add_done_callback(self._done)

        async def run() -> tuple[Transcript, float, float]:
            return await asyncio.shield(job), start, self.clock.now()

        return self.tasks.start(name, run()) if name else self.tasks.own(run(), "stt")

    def _done(self, job: asyncio.Future) -> None:
        self.busy -= 1
        if not job.cancelled():
            job.exception()  # retrieved here: a cancelled waiter never reads it, and asyncio would log it

    async def transcript_of(self, reply: Reply) -> Transcript:
        """The transcript of ``reply.audio`` (reusing the speculative one when the reply holds it); fills the
        record's ``stt_runs``, ``stt_start`` and ``stt_end``. Cancelling the caller leaves the transcription to
        finish for whoever else waits on it. Also fills ``stt_backend`` (the chain member that transcribed).

        Raises:
            Exception: whatever the STT raised.
        """
        rec = reply.record
        if reply.stt is None:
            reply.stt = self.start(reply.audio)
        rec.stt_runs = self.runs
        result, rec.stt_start, rec.stt_end = await asyncio.shield(reply.stt)
        rec.stt_backend = result.backend
        return result
