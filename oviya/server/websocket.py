"""Schema validation in front of FastRTC's websocket protocol (``WS /websocket/offer``).

FastRTC's websocket loop reads ``receive_json()`` and indexes the result directly, so one malformed message
(not JSON, unknown event, bad base64) ends the connection with a stack trace. :class:`ValidatingWebSocket` wraps the
socket: each incoming message is checked against the schema below; a bad one is answered with an error event and
skipped, and the connection goes on. A ``start`` the server's limits refuse is answered with an error event
(``max_sessions``, ``max_connections_per_client``) and the socket is closed.

Messages (FastRTC's protocol; audio is base64 mu-law, mono, at the handler's input rate, 16 kHz):
``{"event": "start", "websocket_id": str}`` · ``{"event": "media", "media": {"payload": str}}`` ·
``{"event": "stop"}`` · ``{"event": "ping"}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from fastrtc.websocket import WebSocketHandler
from starlette.websockets import WebSocket, WebSocketDisconnect

from oviya.server.limits import LimitExceeded

POLICY_VIOLATION = 1008  # websocket close code (RFC 6455) for a refused call

# fastrtc 0.0.34's WebSocketHandler sets start_up_task only on "start" but reads it when any connection ends: a
# socket closed before its start (a refused or dropped client) raised AttributeError into the ASGI server.
WebSocketHandler.start_up_task = None


class _Msg(BaseModel):
    model_config = ConfigDict(extra="allow")


class StartMsg(_Msg):
    event: Literal["start"]
    websocket_id: str = Field(min_length=1, max_length=128)


class MediaPayload(_Msg):
    payload: str


class MediaMsg(_Msg):
    event: Literal["media"]
    media: MediaPayload


class StopMsg(_Msg):
    event: Literal["stop"]


class PingMsg(_Msg):
    event: Literal["ping"]


ClientMessage = TypeAdapter(Annotated[Union[StartMsg, MediaMsg, StopMsg, PingMsg], Field(discriminator="event")])


def error_message(code: str, message: str) -> dict[str, Any]:
    """The error event sent to a client (same envelope as the handler's events)."""
    return {"type": "oviya", "data": {"event": "error", "code": code, "message": message}}


class ValidatingWebSocket:
    """A starlette ``WebSocket`` whose ``receive_json`` only returns valid protocol messages.

    Args:
        websocket: the accepted-or-not socket from the route.
        max_media_bytes: largest decoded audio payload (mu-law: 1 byte per sample).
        on_start: called with the ``websocket_id`` of the ``start`` message; raises LimitExceeded to refuse.
    """

    def __init__(self, websocket: WebSocket, max_media_bytes: int,
                 on_start: Callable[[str], None] | None = None) -> None:
        self._ws = websocket
        self.max_media_bytes = max_media_bytes
        self.on_start = on_start
        self.websocket_id: str | None = None
        self._started = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    async def receive_json(self, mode: str = "text") -> dict[str, Any]:
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            try:
                msg = self._validate(message.get("text"), message.get("bytes"))
            except ValueError as e:
                await self._ws.send_json(error_message("bad_message", str(e)))
                continue
            if msg["event"] == "start" and self.on_start is not None:
                try:
                    self.on_start(msg["websocket_id"])
                except LimitExceeded as e:
                    await self._ws.send_json(error_message(e.code, e.message))
                    await self._ws.close(POLICY_VIOLATION, e.code)
                    raise WebSocketDisconnect(POLICY_VIOLATION) from None
                self.websocket_id = msg["websocket_id"]
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
