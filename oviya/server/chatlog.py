"""The page's view of a call: its transcript as Gradio chat messages, the last turn's timings and every turn's record."""

from __future__ import annotations

from typing import Any

from oviya.events import TranscriptEvent, TurnDone, TurnRecord
from oviya.observer import EngineObserver


class ChatLog(EngineObserver):
    """Folds a call's events into ``messages`` (Gradio ``type="messages"``: ``{"role", "content"}``; a partial line
    is replaced by the later text of the same role and turn, a reply cut short ends in " …") and ``timings`` (the
    last turn's stage timings in ms, its emotion, the user's emotion, the route and the call's live tuning); ``records`` keeps each finished
    turn's record for the page's waterfall and stage table."""

    def __init__(self, messages: list[dict[str, str]] | None = None) -> None:
        self.messages: list[dict[str, str]] = list(messages or [])
        self.timings: dict[str, Any] = {}
        self.records: list[TurnRecord] = []
        self._lines: dict[tuple[str, int], int] = {}  # (role, turn id) -> index of its line in messages

    def on_transcript(self, ev: TranscriptEvent) -> None:
        line = {"role": ev.role, "content": ev.text + (" …" if ev.interrupted else "")}
        key = (ev.role, ev.turn_id)
        if key in self._lines:
            self.messages[self._lines[key]] = line
        else:
            self._lines[key] = len(self.messages)
            self.messages.append(line)

    def on_turn_done(self, ev: TurnDone) -> None:
        rec = ev.record
        self.records.append(rec)
        self.timings = {k: v for k, v in rec.timings().items() if v is not None}
        self.timings |= {k: v for k, v in (("emotion", rec.emotion), ("user_emotion", rec.user_emotion),
                                           ("route", rec.route), ("tuning", rec.tuning)) if v}
