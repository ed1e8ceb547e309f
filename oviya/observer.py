"""Following a conversation: an observer gets each engine event through a hook named for its kind.

The server's handler, the page, the eval harness and the avatar stream all fold the same event stream; each does
it by subclassing :class:`EngineObserver` and overriding the hooks it needs, and :func:`notify` is the one place an
event is told apart by type (docs/architecture.md, "Events").
"""

from __future__ import annotations

from oviya.events import AudioFlush, AudioOut, ErrorEvent, Event, StatusEvent, TranscriptEvent, TurnDone


class EngineObserver:
    """Hooks with nothing to do; override those you need. Each runs on the event loop and must not block."""

    def on_audio(self, ev: AudioOut) -> None:
        """A reply frame was released (``ev.due``: when it should sound, on the engine's clock)."""

    def on_flush(self, ev: AudioFlush) -> None:
        """Reply audio buffered downstream must be dropped (pause at an onset, or barge-in)."""

    def on_transcript(self, ev: TranscriptEvent) -> None:
        """A line of the conversation, partial (``final`` False) or final."""

    def on_status(self, ev: StatusEvent) -> None:
        """The engine's state changed."""

    def on_error(self, ev: ErrorEvent) -> None:
        """Something failed; the session goes on."""

    def on_turn_done(self, ev: TurnDone) -> None:
        """A turn finished; ``ev.record`` has its timings and outcome."""


_HOOKS: dict[type, str] = {
    AudioOut: "on_audio", AudioFlush: "on_flush", TranscriptEvent: "on_transcript", StatusEvent: "on_status",
    ErrorEvent: "on_error", TurnDone: "on_turn_done",
}


def notify(event: Event, *observers: EngineObserver) -> None:
    """Hand ``event`` to each observer's hook for its kind, in order.

    Raises:
        TypeError: ``event`` is not an engine event.
    """
    try:
        hook = _HOOKS[type(event)]
    except KeyError:
        raise TypeError(f"not an engine event: {event!r}") from None
    for observer in observers:
        getattr(observer, hook)(event)
