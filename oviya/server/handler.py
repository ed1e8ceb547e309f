"""FastRTC glue: one :class:`OviyaHandler` copy per WebRTC or websocket connection, each owning a turn engine.

Frames from FastRTC (resampled by it to 16 kHz mono int16) go to :meth:`TurnEngine.push_audio`; engine events come
back through ``emit``: audio as ``(24000, int16 frame)``, everything else both as Gradio ``AdditionalOutputs``
(transcript + timings for the UI) and as a JSON message on the data channel / websocket for API clients::

    {"type": "oviya", "data": {"event": "transcript" | "status" | "turn" | "error", ...}}
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from fastrtc import AdditionalOutputs, AsyncStreamHandler, get_current_context

from oviya.audio import AudioFormatError
from oviya.brain.persona import load_persona
from oviya.components import Components
from oviya.config import Settings
from oviya.engine import AudioFlush, TurnEngine
from oviya.events import AudioOut, ErrorEvent, Event, StatusEvent, TranscriptEvent, TurnDone
from oviya.metrics import Metrics

log = logging.getLogger(__name__)

EMIT_POLL_S = 0.1  # FastRTC calls emit() in a loop; waiting this long for an event keeps it from spinning


def event_message(event: Event) -> dict[str, Any] | None:
    """The JSON payload sent to API clients for a non-audio event."""
    if isinstance(event, TranscriptEvent):
        return {"event": "transcript", "role": event.role, "text": event.text, "turn_id": event.turn_id,
                "final": event.final, "interrupted": event.interrupted, "emotion": event.emotion}
    if isinstance(event, StatusEvent):
        return {"event": "status", "state": event.state}
    if isinstance(event, TurnDone):
        return {"event": "turn", **event.record.as_dict()}
    if isinstance(event, ErrorEvent):
        return {"event": "error", "code": event.code, "message": event.message}
    return None


class SessionRegistry:
    """Live handlers by connection id (``webrtc_id`` / ``websocket_id``), so typed turns reach the right call."""

    def __init__(self) -> None:
        self._by_id: dict[str, OviyaHandler] = {}

    def add(self, session_id: str, handler: "OviyaHandler") -> None:
        self._by_id[session_id] = handler

    def remove(self, session_id: str, handler: "OviyaHandler") -> None:
        if self._by_id.get(session_id) is handler:
            del self._by_id[session_id]

    def get(self, session_id: str) -> "OviyaHandler | None":
        return self._by_id.get(session_id)

    def __len__(self) -> int:
        return len(self._by_id)


class OviyaHandler(AsyncStreamHandler):
    """FastRTC handler wrapping a :class:`TurnEngine`.

    Args:
        components: shared models.
        settings: all tunables.
        sessions: registry shared by all copies.
        metrics: Prometheus collectors shared by all copies.
    """

    def __init__(self, components: Components, settings: Settings, sessions: SessionRegistry, metrics: Metrics) -> None:
        super().__init__(expected_layout="mono", output_sample_rate=settings.audio.output_sample_rate,
                         input_sample_rate=settings.audio.vad_sample_rate)
        self.components = components
        self.settings = settings
        self.sessions = sessions
        self.metrics = metrics
        self.engine = TurnEngine(components, settings)
        self.session_id: str | None = None
        self.chat: list[dict[str, str]] = []  # Gradio "messages" transcript
        self._lines: dict[tuple[str, int], int] = {}  # (role, turn id) -> index of its line in self.chat
        self.last_timings: dict[str, Any] = {}

    def copy(self) -> "OviyaHandler":
        return OviyaHandler(self.components, self.settings, self.sessions, self.metrics)

    async def start_up(self) -> None:
        await self.engine.start()
        self.session_id = get_current_context().webrtc_id
        self.sessions.add(self.session_id, self)
        self.metrics.sessions.set(len(self.sessions))
        log.info("session %s started", self.session_id)

    async def receive(self, frame: tuple[int, np.ndarray]) -> None:
        sample_rate, pcm = frame
        try:
            self.engine.push_audio(pcm, int(sample_rate))
        except AudioFormatError as e:
            self._send({"event": "error", "code": "bad_audio", "message": str(e)})

    async def emit(self):  # noqa: ANN201 - FastRTC's EmitType
        self._follow_ui_inputs()
        event = await self.engine.next_event(EMIT_POLL_S)
        if event is None:
            return None
        if isinstance(event, AudioOut):
            return (event.sample_rate, event.pcm)
        if isinstance(event, AudioFlush):
            self.clear_queue()
            return None
        if isinstance(event, TurnDone):
            self.metrics.observe(event.record)
        message = event_message(event)
        if message is not None:
            self._send(message)
        if self._update_chat(event):
            return AdditionalOutputs(list(self.chat), dict(self.last_timings))
        return None

    def push_text(self, text: str) -> None:
        """A typed turn for this call. Raises ValueError (empty or too long)."""
        self.engine.push_text(text)

    def set_persona(self, name: str) -> None:
        """Switch this call's persona (``config/personas/<name>.yaml``) from the next reply on.

        Raises:
            FileNotFoundError: unknown persona. pydantic.ValidationError: a broken persona file.
        """
        if name != self.engine.brain.persona_file:
            self.engine.brain.set_persona(load_persona(name), name)
            self._send({"event": "persona", "name": name, "display_name": self.engine.brain.persona.name})
            log.info("session %s: persona %s", self.session_id, name)

    def set_memory_key(self, key: str) -> None:
        """Remember this caller across sessions under ``key`` (see :meth:`TurnEngine.set_memory_key`).

        Raises:
            ValueError: an empty or overlong key.
        """
        if key.strip() != self.engine.memory_key:
            self.engine.set_memory_key(key)
            self._send({"event": "memory", "status": "enabled"})

    def _follow_ui_inputs(self) -> None:
        # The Gradio page passes its persona dropdown and memory-key box as the stream's extra inputs; FastRTC keeps
        # the latest values in ``latest_args`` ([webrtc value, persona, memory key]) and updates them on change.
        args = self.latest_args
        if not isinstance(args, list):
            return
        for index, apply, code in ((1, self.set_persona, "bad_persona"), (2, self.set_memory_key, "bad_memory_key")):
            if len(args) > index and isinstance(args[index], str) and args[index].strip():
                try:
                    apply(args[index])
                except (FileNotFoundError, ValueError) as e:
                    self._send({"event": "error", "code": code, "message": str(e)})

    async def shutdown(self) -> None:
        if self.session_id is not None:
            self.sessions.remove(self.session_id, self)
            self.metrics.sessions.set(len(self.sessions))
        await self.engine.aclose()
        log.info("session %s ended after %d turns", self.session_id, len(self.engine.records))

    def _send(self, data: dict[str, Any]) -> None:
        if self.channel is not None:
            try:
                self.channel.send(json.dumps({"type": "oviya", "data": data}))
            except Exception:  # noqa: BLE001 - a closed channel must not break the audio path
                log.debug("could not send %s", data.get("event"))

    def _update_chat(self, event: Event) -> bool:
        """Fold an event into the UI transcript; True when the UI should refresh."""
        if isinstance(event, TranscriptEvent):
            line = {"role": event.role, "content": event.text + (" …" if event.interrupted else "")}
            key = (event.role, event.turn_id)
            if key in self._lines:
                self.chat[self._lines[key]] = line
            else:
                self._lines[key] = len(self.chat)
                self.chat.append(line)
            return True
        if isinstance(event, TurnDone):
            rec = event.record
            self.last_timings = {k: v for k, v in rec.timings().items() if v is not None}
            self.last_timings |= {k: v for k, v in (("emotion", rec.emotion), ("user_emotion", rec.user_emotion),
                                                    ("route", rec.route)) if v}
            return True
        return False
