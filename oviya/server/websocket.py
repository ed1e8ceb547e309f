"""Schema validation in front of FastRTC's websocket protocol (``WS /websocket/offer``).

FastRTC's websocket loop reads ``receive_json()`` and indexes the result directly, so one malformed message
(not JSON, unknown event, bad base64) ends the connection with a stack trace. :class:`ValidatingWebSocket` wraps the
socket: each incoming message is checked against the schema below; a bad one is answered with an error event and
skipped, and the connection goes on. A ``start`` the server's limits refuse is answered with an error event
(``max_sessions``, ``max_connections_per_client``, ``session_exists``) and the socket is closed; an admitted one is
answered with ``{"event": "session", "session_id", "call_token"}``: the call's secret for call-scoped API requests.

Everything sent to the client goes through a bounded queue served by one task: a client that stops reading is
dropped (the call ends as a hang-up) once ``server.send_queue`` messages wait or one takes longer than
``server.send_timeout_s``, so it can never grow the server's memory.

Messages (FastRTC's protocol; audio is base64 mu-law, mono, at the handler's input rate, 16 kHz):
``{"event": "start", "websocket_id": str}`` · ``{"event": "media", "media": {"payload": str}}`` ·
``{"event": "stop"}`` · ``{"event": "ping"}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastrtc.websocket import WebSocketHandler
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from oviya.server.limits import SESSION_ID_PATTERN, LimitExceeded

log = logging.getLogger(__name__)
POLICY_VIOLATION = 1008  # websocket close code (RFC 6455) for a refused call

# fastrtc 0.0.34's WebSocketHandler sets start_up_task only on "start" but reads it when any connection ends: a
# socket closed before its start (a refused or dropped client) raised AttributeError into the ASGI server.
WebSocketHandler.start_up_task = None


class _Msg(BaseModel):
    model_config = ConfigDict(extra="allow")


class StartMsg(_Msg):
    event: Literal["start"]
    websocket_id: str = Field(pattern=SESSION_ID_PATTERN)


class MediaPayload(_Msg):
    payload: str


class MediaMsg(_Msg):
    event: Literal["media"]
    media: MediaPayload


class StopMsg(_Msg):
    event: Literal["stop"]


class PingMsg(_Msg):
    event: Literal["ping"]


ClientMessage = TypeAdapter(Annotated[StartMsg | MediaMsg | StopMsg | PingMsg, Field(discriminator="event")])


def error_message(code: str, message: str) -> dict[str, Any]:
    """The error event sent to a client (same envelope as the handler's events)."""
    return {"type": "oviya", "data": {"event": "error", "code": code, "message": message}}


class ValidatingWebSocket:
    """A starlette ``WebSocket`` whose ``receive_json`` only returns valid protocol messages.

    Args:
        websocket: the accepted-or-not socket from the route.
        max_media_bytes: largest decoded audio payload (mu-law: 1 byte per sample).
        on_start: called with the ``websocket_id`` of the ``start`` message; returns the call's token, raises
            LimitExceeded to refuse.
        send_queue: messages that may wait for a slow client before it is dropped.
        send_timeout_s: the longest one message may take to be sent before the client is dropped.
    """

    def __init__(self, websocket: WebSocket, max_media_bytes: int,
                 on_start: Callable[[str], str] | None = None, send_queue: int = 256,
                 send_timeout_s: float = 10.0) -> None:
        self._ws = websocket
        self.max_media_bytes = max_media_bytes
        self.on_start = on_start
        self.websocket_id: str | None = None
        self._started = False
        self.send_timeout_s = send_timeout_s
        self._outbox: asyncio.Queue[str] = asyncio.Queue(send_queue)
        self._sender: asyncio.Task | None = None
        self.dropped = asyncio.Event()  # set when the client stopped reading: the connection is given up

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    # --- sending: one bounded queue, one task -----------------------------------------------------------------------
    async def send_json(self, data: Any, mode: str = "text") -> None:
        self.post(json.dumps(data))

    async def send_text(self, data: str) -> None:
        self.post(data)

    def post(self, text: str) -> None:
        """Queue one message for the client; drops the client when the queue is full."""
        if self.dropped.is_set():
            return
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            self._drop(f"{self._outbox.maxsize} messages unsent")
            return
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop(), name="oviya-ws-send")

    async def _send_loop(self) -> None:
        while True:
            text = await self._outbox.get()
            try:
                await asyncio.wait_for(self._ws.send_text(text), self.send_timeout_s)
            except TimeoutError:
                self._drop(f"a message not taken within {self.send_timeout_s} s")
                return
            except Exception:  # noqa: BLE001 - the socket closed: nothing more to send
                self.dropped.set()
                return
            finally:
                self._outbox.task_done()

    def _drop(self, why: str) -> None:
        if not self.dropped.is_set():
            log.warning("websocket client not reading (%s): dropped", why)
            self.dropped.set()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Send what is queued (within ``send_timeout_s``), then close."""
        if not self.dropped.is_set():
            try:
                await asyncio.wait_for(self._outbox.join(), self.send_timeout_s)
            except TimeoutError:
                pass
        await self._ws.close(code, reason)

    async def aclose(self) -> None:
        """Stop the sender task (the connection is over)."""
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)

    # --- receiving ------------------------------------------------------------------------------------------------
    async def _receive(self) -> dict[str, Any]:
        """The next ASGI message, or a disconnect once the client has been dropped."""
        receiving = asyncio.ensure_future(self._ws.receive())
        dropped = asyncio.ensure_future(self.dropped.wait())
        await asyncio.wait({receiving, dropped}, return_when=asyncio.FIRST_COMPLETED)
        dropped.cancel()
        if not receiving.done():
            receiving.cancel()
            return {"type": "websocket.disconnect", "code": POLICY_VIOLATION}
        return receiving.result()

    async def receive_json(self, mode: str = "text") -> dict[str, Any]:
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            try:
                msg = self._validate(message.get("text"), message.get("bytes"))
            except ValueError as e:
                self.post(json.dumps(error_message("bad_message", str(e))))
                continue
            if msg["event"] == "start" and self.on_start is not None:
                try:
                    token = self.on_start(msg["websocket_id"])
                except LimitExceeded as e:
                    self.post(json.dumps(error_message(e.code, e.message)))
                    await self.close(POLICY_VIOLATION, e.code)
                    raise WebSocketDisconnect(POLICY_VIOLATION) from None
                self.websocket_id = msg["websocket_id"]
                self.post(json.dumps({"type": "oviya", "data": {"event": "session", "session_id": self.websocket_id,
                                                                "call_token": token}}))
            return msg

    def _validate(self, text: str | None, data: bytes | None) -> dict[str, Any]:
        if text is None:
            raise ValueError(f"expected a JSON text message, got {len(data or b'')} binary bytes")
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON: {e.msg}") from None
        try:
            msg = ClientMessage.validate_python(raw)
        except ValidationError as e:
            first = e.errors()[0]
            raise ValueError(f"invalid message: {first['msg']} at {'.'.join(map(str, first['loc'])) or 'root'}") from None
        if isinstance(msg, MediaMsg):
            if not self._started:
                raise ValueError("media before start")
            try:
                audio = base64.b64decode(msg.media.payload, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("media.payload is not base64") from None
            if len(audio) > self.max_media_bytes:
                raise ValueError(f"media payload of {len(audio)} bytes exceeds {self.max_media_bytes}")
        if isinstance(msg, StartMsg):
            if self._started:
                raise ValueError("start after start: one call per connection")
            self._started = True
        return msg.model_dump()
