"""FastRTC glue: one :class:`OviyaHandler` copy per WebRTC or websocket connection, each owning a turn engine.

Frames from FastRTC (resampled by it to 16 kHz mono int16) go to :meth:`TurnEngine.push_audio`; engine events come
back through ``emit``: audio as ``(24000, int16 frame)``, everything else both as Gradio ``AdditionalOutputs``
(transcript + timings + avatar view for the UI) and as a JSON message on the data channel / websocket for API
clients::

    {"type": "oviya", "data": {"event": "transcript" | "status" | "turn" | "error" | "avatar", ...}}

With ``avatar.enabled`` each call also has an avatar video (:mod:`oviya.avatar.stream`): announced at the start by
``{"event": "avatar", "state": "on", "stream_url": "/avatar/<key>", "fps", "width", "height"}``, shown as MJPEG at
that URL, and on the websocket sent frame by frame as ``video_frame`` events (``timestamp_ms``, ``frame_index``,
``width``, ``height``, ``speaking``, ``mouth_open``, ``audio_ms``, ``format: "jpeg"``, ``data``: base64 JPEG). The
data channel of a WebRTC call does not carry frames (the MJPEG URL does). A lip-sync service failure sends
``{"event": "avatar", "state": "audio_only", "reason"}``; the turn goes on without frames.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import logging
import time
from typing import Any

import numpy as np
from fastrtc import AdditionalOutputs, AsyncStreamHandler, CloseStream, get_current_context

from oviya import logs
from oviya.audio import AudioFormatError
from oviya.avatar.stream import AvatarStream, VideoFrame, make_avatar
from oviya.brain.persona import load_persona
from oviya.components import Components
from oviya.config import Settings
from oviya.engine import TurnEngine
from oviya.events import AudioFlush, AudioOut, ErrorEvent, Event, StatusEvent, TranscriptEvent, TurnDone
from oviya.faults import FaultPlan, with_faults
from oviya.observer import notify
from oviya.recording import CallRecording
from oviya.server.chatlog import ChatLog
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


def _log_crash(task: asyncio.Task) -> None:
    """The avatar is an extra: if its task dies the call goes on, and the log says why."""
    if not task.cancelled() and task.exception() is not None:
        log.error("avatar stopped: %r", task.exception())


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
        self.chat = ChatLog()  # the page's transcript and timings
        self._deadline = float("inf")
        self._websocket: Any = None
        self._closing: dict[str, str] | None = None  # the error sent before the stream is closed
        self.video: AvatarStream | None = None
        self.avatar_key: str | None = None
        self._video_task: asyncio.Task | None = None
        self._avatar_view: str | None = None  # HTML for the page's avatar box, sent once with the next UI update
        self._recorded = 0  # engine.records written to the transcript store so far
        self._ui_inputs: tuple[str, str, str] | None = None  # the page's inputs last applied
        self.recording: CallRecording | None = None  # this call as an eval dataset (the page's checkbox)
        self._recording_on = False
        self._recording_refused = False
        self._closed = False

    def copy(self) -> OviyaHandler:
        return OviyaHandler(self.components, self.settings, self.state)

    async def start_up(self) -> None:
        context = get_current_context()
        self.session_id = context.webrtc_id
        self._websocket = context.websocket  # None for WebRTC calls
        logs.session_id.set(self.session_id)
        if self._closed:  # the connection ended before its start-up ran
            return
        try:
            self.state.limits.started(self.session_id)
        except LimitExceeded as e:
            log.warning("call refused: %s", e.code)
            self._closing = {"event": "error", "code": e.code, "message": e.message}
            return
        # Registered before anything is started, so the one release path (ServerState.release) finds all of it.
        self.state.sessions.add(self.session_id, self)
        self.state.metrics.sessions.set(len(self.state.sessions))
        await self.engine.start()
        if self.settings.avatar.enabled:
            self._start_video()
        self._deadline = time.monotonic() + self.settings.limits.max_session_s
        log.info("session started (client %s)", self.state.limits.client_of(self.session_id))

    def _start_video(self) -> None:
        av = self.settings.avatar
        self.video = AvatarStream(av, make_avatar(av, self.components.tts.styles), self.engine.clock,
                                  self._on_video_frame, on_fallback=self._on_avatar_fallback)
        self.avatar_key = self.state.frames.open()
        self._video_task = asyncio.create_task(self.video.run())
        self._video_task.add_done_callback(_log_crash)
        url = f"/avatar/{self.avatar_key}"
        self._send({"event": "avatar", "state": "on", "stream_url": url, "fps": av.fps, "width": av.width,
                    "height": av.height})
        if self._websocket is None:  # a WebRTC call: maybe the Gradio page's
            self._avatar_view = (f'<img src="{html.escape(url)}" width="{av.width}" height="{av.height}" '
                                 f'alt="{html.escape(self.engine.brain.persona.name)}" style="border-radius:12px">')

    def _on_video_frame(self, frame: VideoFrame) -> None:
        self.state.frames.publish(self.avatar_key or "", frame, (frame.timestamp_ms - self.video.now_ms()) / 1000)
        if self._websocket is not None:
            self._send(frame.message() | {"data": base64.b64encode(frame.jpeg).decode()})

    def _on_avatar_fallback(self, reason: str) -> None:
        self._send({"event": "avatar", "state": "audio_only", "reason": reason})

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

    async def emit(self):
        if self._closed:  # released: end FastRTC's emit loop, which stops on CancelledError (a websocket call's
            raise asyncio.CancelledError  # loop runs until then, and may outlive the connection)
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
        if self._avatar_view is not None:  # the page's avatar box gets the call's stream first
            return self._ui_update()
        event = await self.engine.next_event(EMIT_POLL_S)
        if event is None:
            return None
        notify(event, self.chat, *([self.video] if self.video is not None else []),
               *([self.recording] if self._recording_on else []))
        if isinstance(event, AudioOut):
            return (event.sample_rate, event.pcm)
        if isinstance(event, AudioFlush):
            self.clear_queue()
            return None
        if isinstance(event, TurnDone):
            self._close_video_turn(event)
            await self._record_turn(event)
        message = event_message(event)
        if message is not None:
            self._send(message)
        return self._ui_update() if isinstance(event, (TranscriptEvent, TurnDone)) else None

    def _ui_update(self) -> AdditionalOutputs:
        """Transcript, last timings, (once, None after) the avatar view, the call's turn records and its recording
        (or None) for the page."""
        view, self._avatar_view = self._avatar_view, None
        return AdditionalOutputs(list(self.chat.messages), dict(self.chat.timings), view, list(self.chat.records),
                                 self.recording)

    def _close_video_turn(self, event: TurnDone) -> None:
        """The reply's frame count and A/V drift into its record; a lip-sync failure into its errors."""
        if self.video is None or event.record.outcome == "continued":
            return
        rec = event.record
        rec.avatar_frames, rec.av_drift_ms, failure = self.video.end_turn()
        if failure is not None:
            rec.errors.append(f"avatar: {failure}")

    async def _record_turn(self, event: TurnDone) -> None:
        """Metrics and the durable transcript of a finished turn; then the turn's injected faults are over."""
        rec = event.record
        await self._write_records()
        if self.faults is not None and rec.outcome != "continued":  # a continued turn goes on under the same id
            self.faults.clear()
        log.info("turn %d %s (%s) v2v %s ms", rec.turn_id, rec.outcome, rec.route, rec.v2v_ms)

    async def _write_records(self) -> None:
        """Metrics and the durable transcript of every finished turn not written yet, in order."""
        while self._recorded < len(self.engine.records):
            rec = self.engine.records[self._recorded]
            self._recorded += 1
            self.state.metrics.observe(rec)
            try:
                await asyncio.to_thread(self.state.transcripts.append, self.session_id or "-", rec)
            except (OSError, ValueError) as e:  # the call goes on; the client learns its transcript is not kept
                log.error("transcript not saved: %s", e)
                self._send({"event": "error", "code": "transcript_error", "message": f"transcript not saved: {e}"})

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
            self.engine.memory.rewarm()
            self._send({"event": "persona", "name": name, "display_name": self.engine.brain.persona.name})
            log.info("persona %s", name)

    def set_memory(self, memory_token: str, display_name: str | None = None) -> None:
        """Remember this caller across sessions under ``memory_token`` (a secret this server issued, see
        :class:`~oviya.brain.memory.MemoryTokens`); ``display_name`` is only what Oviya calls them.

        Raises:
            ValueError: a token this server did not issue, or a display name over 64 characters.
        """
        if not self.state.memory_tokens.valid(memory_token):
            raise ValueError("not a memory token issued by this server: ask POST /api/memory without one for a new one")
        name = (display_name or "").strip() or None
        if name is not None and len(name) > 64:
            raise ValueError("display_name must be at most 64 characters")
        renamed = name != self.engine.brain.user_name
        self.engine.brain.user_name = name
        if memory_token != self.engine.memory.key:
            self.engine.memory.set_key(memory_token)  # re-warms the prompt once the notes are read
            self._send({"event": "memory", "status": "enabled"})
        elif renamed:
            self.engine.memory.rewarm()

    def set_recording(self, on: bool) -> None:
        """Record this call's next turns as an eval dataset (:mod:`oviya.recording`), or stop; what was recorded
        stays downloadable from the page. A refusal (server forbids, disk) reaches the client as an error event,
        once."""
        if on and self.recording is None and not self._recording_refused:
            try:
                self.recording = CallRecording(self.settings.recording, self._on_recording_stop)
            except (ValueError, OSError) as e:
                self._recording_refused = True
                log.warning("recording refused: %s", e)
                self._send({"event": "error", "code": "recording_refused", "message": str(e)})
                return
        if on != self._recording_on and self.recording is not None:
            self._recording_on = on
            self._send({"event": "recording", "state": "on" if on else "off"})
            log.info("recording %s", "on" if on else "off")

    def _on_recording_stop(self, reason: str) -> None:
        self._recording_on = False
        self._send({"event": "error", "code": "recording_stopped", "message": reason})

    def _follow_ui_inputs(self) -> None:
        # The page's recording checkbox is kept by the server per page (a Gradio event, server.pages): FastRTC hands
        # a call its stream inputs only when they change during the call, and the box is ticked before it.
        self.set_recording(self.state.pages.recording_wanted(self.session_id))
        # The Gradio page passes its persona dropdown, the name box and the page's memory token (browser storage) as
        # the stream's extra inputs: FastRTC keeps the latest values in ``latest_args`` ([webrtc value, persona,
        # name, memory token]) and updates them on change. Memory is on once the user gives a name.
        args = self.latest_args
        if not isinstance(args, list) or len(args) < 4:
            return
        persona, name, token = (a if isinstance(a, str) else "" for a in args[1:4])
        if (persona, name, token) == self._ui_inputs:
            return  # applied (or refused) already: nothing changed since
        self._ui_inputs = (persona, name, token)
        for value, apply, code in ((persona, lambda: self.set_persona(persona), "bad_persona"),
                                   (name, lambda: self.set_memory(token, name), "bad_memory")):
            if value.strip():
                try:
                    apply()
                except (FileNotFoundError, ValueError) as e:
                    self._send({"event": "error", "code": code, "message": str(e)})

    async def shutdown(self) -> None:
        """FastRTC's end of a WebRTC call: the server's one release path."""
        await self.state.release(self)

    async def close(self) -> None:
        """Stop everything of this call (avatar task and stream, engine); the reply in flight is written to the
        transcript as a ``hangup`` turn; the user's memory is saved. Idempotent; called by ServerState.release."""
        if self._closed:
            return
        self._closed = True
        if self.session_id is not None:
            logs.session_id.set(self.session_id)
        if self._video_task is not None:
            self._video_task.cancel()
            await asyncio.gather(self._video_task, return_exceptions=True)
        if self.avatar_key is not None:
            self.state.frames.close(self.avatar_key)
        await self.engine.stop()
        await self._write_records()  # the transcript first: the notes' LLM summary may take seconds
        await self.engine.memory.save()
        log.info("session ended after %d turns", len(self.engine.records))
        await asyncio.to_thread(release_free_memory)

    def _send(self, data: dict[str, Any]) -> None:
        if self.channel is not None:
            try:
                self.channel.send(json.dumps({"type": "oviya", "data": data}))
            except Exception:  # noqa: BLE001 - a closed channel must not break the audio path
                log.debug("could not send %s", data.get("event"))
