"""One reply's life cycle: thinking → speaking ⇄ paused → done | interrupted (docs/architecture.md, "Turn states").

A :class:`Reply` is created when a user turn is to be answered (or judged, for talk-over) and holds what the engine
needs to finish it honestly: its timing record, the clauses sent to TTS, how many samples each became (so only
the words actually heard enter the history after a barge-in), and the user's audio with its transcription task.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from oviya.events import TurnRecord

ReplyState = Literal["thinking", "speaking", "paused", "done", "interrupted"]
_NEXT: dict[ReplyState, frozenset[ReplyState]] = {
    "thinking": frozenset({"speaking", "done", "interrupted"}),
    "speaking": frozenset({"paused", "done", "interrupted"}),
    "paused": frozenset({"speaking", "done", "interrupted"}),
    "done": frozenset(),
    "interrupted": frozenset(),
}


@dataclass
class Reply:
    """A reply and its state.

    Attributes:
        record: the turn's timing record (filled in as the stages run).
        clauses: the text clauses sent to TTS, in order.
        samples: clause index → output samples synthesised for it.
        audio: the user's utterance (np.ndarray[float32], shape (n,), 16 kHz mono) for voice turns, else None.
        regions: the speech the VAD found in ``audio``, ``(start_s, end_s)`` from its first sample.
        stt: the task transcribing ``audio`` (possibly started speculatively at the first pause).
        continued: the user went on before Oviya spoke: the turn is merged into the next one.
        state: ``thinking`` (STT / LLM / TTS before the first audio), ``speaking`` (audio playing), ``paused``
            (the user began talking over her; the audio waits), ``done`` or ``interrupted`` (final).
        hold: set for a preemptive reply (prepared before the end of the turn): its audio waits until the event is
            set (the turn ended at its pause); None for every other reply.
    """

    record: TurnRecord
    clauses: list[str] = field(default_factory=list)
    samples: dict[int, int] = field(default_factory=dict)
    audio: np.ndarray | None = None
    regions: tuple[tuple[float, float], ...] = ()
    stt: asyncio.Task | None = None
    continued: bool = False
    state: ReplyState = "thinking"
    hold: asyncio.Event | None = None

    @property
    def held(self) -> bool:
        """A preemptive reply not (yet) released: nothing of it may be heard, shown or remembered."""
        return self.hold is not None and not self.hold.is_set()

    async def released(self) -> None:
        """Return once the reply may be heard (at once for a reply that is not preemptive)."""
        if self.hold is not None:
            await self.hold.wait()

    def to(self, state: ReplyState) -> None:
        """Move to ``state``.

        Raises:
            RuntimeError: a transition the life cycle does not have (e.g. out of ``done``).
        """
        if state not in _NEXT[self.state]:
            raise RuntimeError(f"reply of turn {self.record.turn_id}: {self.state} -> {state} is not a transition")
        self.state = state

    @property
    def sounding(self) -> bool:
        """Her reply has started sounding (``speaking`` or ``paused`` by the user's onset)."""
        return self.state in ("speaking", "paused")

    def spoken_text(self, heard: dict[int, int]) -> str:
        """The words the listener heard: whole clauses, plus the played fraction of a clause cut short.

        Args:
            heard: clause index → output samples played (from the player).
        """
        words: list[str] = []
        for i, clause in enumerate(self.clauses):
            total, done = self.samples.get(i, 0), heard.get(i, 0)
            if total == 0 or done <= 0:
                break
            w = clause.split()
            words += w if done >= total else w[: round(len(w) * done / total)]
            if done < total:
                break
        return " ".join(words)
