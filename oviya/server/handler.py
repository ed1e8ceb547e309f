"""FastRTC glue: one :class:`OviyaHandler` copy per WebRTC or websocket connection, each owning a turn engine.

Frames from FastRTC (resampled by it to 16 kHz mono int16) go to :meth:`TurnEngine.push_audio`; engine events come
back through ``emit``: audio as ``(24000, int16 frame)``, everything else both as Gradio ``AdditionalOutputs``
(transcript + timings for the UI) and as a JSON message on the data channel / websocket for API clients::

    {"type": "oviya", "data": {"event": "transcript" | "status" | "turn" | "error", ...}}
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import numpy as np
from fastrtc import AdditionalOutputs, AsyncStreamHandler, CloseStream, get_current_context

from oviya import logs
from oviya.audio import AudioFormatError
from oviya.brain.persona import load_persona
from oviya.components import Components
from oviya.config import Settings
from oviya.engine import AudioFlush, TurnEngine
from oviya.events import AudioOut, ErrorEvent, Event, StatusEvent, TranscriptEvent, TurnDone
from oviya.faults import FaultPlan, with_faults
from oviya.server.limits import LimitExceeded
from oviya.server.memtrim import release_free_memory
from oviya.server.state import ServerState

log = logging.getLogger(__name__)

WS_LIMIT_CLOSE = 1008  # websocket close code (RFC 6455 policy violation) for a call a limit ended
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


class OviyaHandler(AsyncStreamHandler):
    """FastRTC handler wrapping a :class:`TurnEngine`.

    Every call counts against the server's limits (refused calls get an error event, then the stream closes), is
    ended after ``limits.max_session_s``, has its user turns rate-limited per client, and has each finished turn
    appended to the transcript store before the next event goes out.

    Args:
        components: shared models.
        settings: all tunables.
        state: sessions, metrics, limits and transcript store shared by all copies.
    """

    def __init__(self, components: Components, settings: Settings, state: ServerState) -> None:
        super().__init__(expected_layout="mono", output_sample_rate=settings.audio.output_sample_rate,
                         input_sample_rate=settings.audio.vad_sample_rate)
        self.components = components
        self.settings = settings
        self.state = state
        self.faults = FaultPlan() if state.faults_api else None
        self.engine = TurnEngine(with_faults(components, self.faults) if self.faults else components, settings)
        self.engine.turn_gate = self._admit_turn
        self.session_id: str | None = None
        self.chat: list[dict[str, str]] = []  # Gradio "messages" transcript
        self._lines: dict[tuple[str, int], int] = {}  # (role, turn id) -> index of its line in self.chat
        self.last_timings: dict[str, Any] = {}
        self._deadline = float("inf")
        self._websocket: Any = None
        self._closing: dict[str, str] | None = None  # the error sent before the stream is closed

    def copy(self) -> "OviyaHandler":
        return OviyaHandler(self.components, self.settings, self.state)

    async def start_up(self) -> None:
        context = get_current_context()
        self.session_id = context.webrtc_id
        self._websocket = context.websocket  # None for WebRTC calls
        logs.session_id.set(self.session_id)
        try:
            self.state.limits.started(self.session_id)
        except LimitExceeded as e:
            log.warning("call refused: %s", e.code)
            self._closing = {"event": "error", "code": e.code, "message": e.message}
            return
        await self.engine.start()
        self._deadline = time.monotonic() + self.settings.limits.max_session_s
        self.state.sessions.add(self.session_id, self)
        self.state.metrics.sessions.set(len(self.state.sessions))
        log.info("session started (client %s)", self.state.limits.client_of(self.session_id))

    def _admit_turn(self) -> tuple[str, str] | None:
        try:
            self.state.limits.admit_turn(self.session_id or "")
        except LimitExceeded as e:
            log.warning("turn refused: %s", e.message)
            return e.code, e.message
        return None

    async def receive(self, frame: tuple[int, np.ndarray]) -> None:
        logs.session_id.set(self.session_id or "-")
        if self._closing is not None:
            return
        sample_rate, pcm = frame
        try:
            self.engine.push_audio(pcm, int(sample_rate))
        except AudioFormatError as e:
            self._send({"event": "error", "code": "bad_audio", "message": str(e)})

    async def emit(self):  # noqa: ANN201 - FastRTC's EmitType
        logs.session_id.set(self.session_id or "-")
        if self._closing is None and time.monotonic() > self._deadline:
            minutes = self.settings.limits.max_session_s / 60
            self._closing = {"event": "error", "code": "session_time_limit",
                             "message": f"calls end after {minutes:.0f} min; start a new one to go on"}
            log.info("session time limit reached")
        if self._closing is not None:
            self._send(self._closing)
            await asyncio.sleep(EMIT_POLL_S)  # lets the error reach the client before the stream closes
            if self._websocket is not None:  # FastRTC's websocket loop only notices CloseStream on the next message
                try:
                    await self._websocket.close(WS_LIMIT_CLOSE, self._closing["code"])
                except RuntimeError:  # already closed
                    pass
            return CloseStream(self._closing["message"])
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
            await self._record_turn(event)
        message = event_message(event)
        if message is not None:
            self._send(message)
        if self._update_chat(event):
            return AdditionalOutputs(list(self.chat), dict(self.last_timings))
        return None

    async def _record_turn(self, event: TurnDone) -> None:
        """Metrics and the durable transcript of a finished turn; then the turn's injected faults are over."""
        rec = event.record
        self.state.metrics.observe(rec)
        try:
            await asyncio.to_thread(self.state.transcripts.append, self.session_id or "-", rec)
        except OSError as e:  # the conversation goes on; the client learns its transcript is not being kept
            log.error("transcript not saved: %s", e)
            self._send({"event": "error", "code": "transcript_error", "message": f"transcript not saved: {e}"})
        if self.faults is not None and rec.outcome != "continued":  # a continued turn goes on under the same id
            self.faults.clear()
        log.info("turn %d %s (%s) v2v %s ms", rec.turn_id, rec.outcome, rec.route, rec.v2v_ms)

    def push_text(self, text: str) -> None:
        """A typed turn for this call. Raises ValueError (empty or too long)."""
        logs.session_id.set(self.session_id or "-")  # the reply's tasks start here (an HTTP request's context)
        self.engine.push_text(text)

    def arm_fault(self, stage: str, mode: str) -> None:
        """Make ``stage`` fail in this call's next turn (:mod:`oviya.faults`).

        Raises:
            ValueError: fault injection is off (``server.faults_api``), or an unknown stage/mode.
        """
        if self.faults is None:
            raise ValueError("fault injection is off (server.faults_api)")
        self.faults.arm(stage, mode)  # type: ignore[arg-type]
        log.warning("fault armed: %s %s", stage, mode)

    def set_persona(self, name: str) -> None:
        """Switch this call's persona (``config/personas/<name>.yaml``) from the next reply on.

        Raises:
            FileNotFoundError: unknown persona. pydantic.ValidationError: a broken persona file.
        """
        if name != self.engine.brain.persona_file:
            self.engine.brain.set_persona(load_persona(name), name)
            self._send({"event": "persona", "name": name, "display_name": self.engine.brain.persona.name})
            log.info("persona %s", name)

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
        if self.session_id is None:
            return
        logs.session_id.set(self.session_id)
        self.state.sessions.remove(self.session_id, self)
        self.state.metrics.sessions.set(len(self.state.sessions))
        self.state.limits.close(self.session_id)
        await self.engine.aclose()
        log.info("session ended after %d turns", len(self.engine.records))
        await asyncio.to_thread(release_free_memory)

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
