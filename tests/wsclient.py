"""A small client of FastRTC's websocket protocol (``WS /websocket/offer``) for tests: audio as base64 mu-law
16 kHz mono 20 ms chunks, paced in real time; every message received is collected by a reader task."""

from __future__ import annotations

import asyncio
import audioop  # mu-law codec, as FastRTC's websocket protocol uses (deprecated in 3.13; we run 3.11)
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import numpy as np
import websockets

from oviya.audio import to_int16

CHUNK = 320  # 20 ms at 16 kHz, the handler's input rate


def ws_url(base: str, token: str | None = None) -> str:
    return base.replace("http://", "ws://") + "/websocket/offer" + (f"?token={token}" if token else "")


def media_message(pcm: np.ndarray) -> str:
    """One media message of int16 16 kHz mono samples."""
    return json.dumps({"event": "media", "media": {"payload": base64.b64encode(audioop.lin2ulaw(pcm.tobytes(), 2)).decode()}})


class Call:
    """An open websocket call. Use ``async with Call(base, token=..., headers=...) as call:``.

    Attributes:
        sid: the websocket_id (the session id for the HTTP API).
        token: the call's secret from the server's ``session`` event (``X-Call-Token`` for the HTTP API).
        messages: everything received, in order, except avatar frames.
        frames: ``video_frame`` events (their base64 image decoded into ``jpeg``), in order.
    """

    def __init__(self, base: str, token: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.url = ws_url(base, token)
        self.headers = headers or {}
        self.sid = uuid.uuid4().hex
        self.messages: list[dict] = []
        self.frames: list[dict] = []
        self.closed = asyncio.Event()

    async def __aenter__(self) -> Call:
        self.ws = await websockets.connect(self.url, additional_headers=self.headers, max_size=None)
        await self.ws.send(json.dumps({"event": "start", "websocket_id": self.sid}))
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._reader.cancel()
        await self.ws.close()

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                data = message.get("data") if isinstance(message, dict) else None
                if isinstance(data, dict) and data.get("event") == "video_frame":
                    self.frames.append({**data, "jpeg": base64.b64decode(data.pop("data"))})
                else:
                    self.messages.append(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()

    @property
    def token(self) -> str | None:
        return next((e["call_token"] for e in self.events("session")), None)

    def api(self) -> dict[str, str]:
        """The headers of a call-scoped API request."""
        return {"X-Call-Token": self.token or ""}

    def events(self, name: str | None = None) -> list[dict]:
        """Oviya's events (``data`` of ``{"type": "oviya"}`` messages), optionally only those named ``name``."""
        out = [m["data"] for m in self.messages if m.get("type") == "oviya"]
        return [e for e in out if name is None or e.get("event") == name]

    def reply_audio(self) -> np.ndarray:
        """Received reply audio: int16, 24 kHz mono."""
        media = [m for m in self.messages if m.get("event") == "media"]
        return np.frombuffer(b"".join(audioop.ulaw2lin(base64.b64decode(m["media"]["payload"]), 2) for m in media),
                             np.int16)

    async def wait_for(self, pred: Callable[[dict], bool], timeout: float = 30.0) -> dict:
        """The first Oviya event satisfying ``pred`` (already received or arriving within ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events():
                if pred(e):
                    return e
            if time.monotonic() > deadline or self.closed.is_set():
                raise AssertionError(f"no matching event within {timeout} s: {self.events()}")
            await asyncio.sleep(0.05)

    def turns(self) -> list[dict]:
        """Records of finished turns (a ``continued`` record is a turn the user went on with: not finished)."""
        return [t for t in self.events("turn") if t["outcome"] != "continued"]

    async def wait_turns(self, n: int, timeout: float = 40.0) -> list[dict]:
        """Wait until ``n`` turns finished; returns their records."""
        deadline = time.monotonic() + timeout
        while len(self.turns()) < n:
            if time.monotonic() > deadline or self.closed.is_set():
                raise AssertionError(f"{len(self.turns())} of {n} turns within {timeout} s: {self.events()}")
            await asyncio.sleep(0.05)
        return self.turns()

    async def speak(self, audio: np.ndarray, tail_s: float = 1.5) -> None:
        """Play ``audio`` (float32, 16 kHz) then ``tail_s`` of silence, in real time."""
        pcm = to_int16(np.concatenate([audio, np.zeros(int(16000 * tail_s), np.float32)]))
        t0 = time.monotonic()
        for k, i in enumerate(range(0, len(pcm), CHUNK)):
            await self.ws.send(media_message(pcm[i : i + CHUNK]))
            await asyncio.sleep(max(0.0, t0 + (k + 1) * 0.02 - time.monotonic()))

    async def registered(self, http, timeout: float = 10.0) -> None:
        """Send silence until the server knows this session (its handler starts on the first frames)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.ws.send(media_message(np.zeros(CHUNK, np.int16)))
            if (await http.get(f"/api/session/{self.sid}", headers=self.api())).status_code == 200:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("session never registered")


@asynccontextmanager
async def live_call(base: str, token: str | None = None,
                    headers: dict[str, str] | None = None) -> AsyncIterator[tuple[Call, httpx.AsyncClient]]:
    """A registered :class:`Call` and an HTTP client for the API (with the bearer token when given)."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    async with Call(base, token, headers) as call, httpx.AsyncClient(base_url=base, headers=auth) as http:
        await call.registered(http)
        http.headers.update(call.api())  # call-scoped requests carry the call's own secret
        yield call, http
