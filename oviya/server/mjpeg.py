"""The avatar for browsers: each call's frames as an MJPEG stream (``multipart/x-mixed-replace``), which an ``<img>``
shows natively — the Gradio page puts one beside the transcript.

Frames are released at their ``timestamp_ms`` (the moment their audio is due to sound), so a page that plays the
call's audio over WebRTC sees them in step with it. A stream's URL holds a random per-call key (128 bits) instead of
needing the API token: an ``<img>`` cannot send an ``Authorization`` header.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

from oviya.avatar.stream import VideoFrame

BOUNDARY = "oviyaframe"
MEDIA_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
VIEWER_QUEUE = 50  # frames (2 s at 25 fps) a slow viewer may lag before its oldest frames are dropped


class TooManyViewers(Exception):
    """A call's avatar already has ``max_viewers`` viewers."""


class FrameHub:
    """Live calls' frames, fanned out to their viewers. Each viewer has a bounded queue (a viewer that stops
    reading loses its oldest frames, never grows memory); a call has at most ``max_viewers``.

    Args:
        max_viewers: simultaneous viewers of one call (``server.mjpeg_viewers_per_call``).
    """

    def __init__(self, max_viewers: int = 4) -> None:
        self.max_viewers = max_viewers
        self._viewers: dict[str, set[asyncio.Queue]] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._viewers

    def open(self) -> str:
        """A new call's stream; returns its key."""
        key = secrets.token_urlsafe(16)
        self._viewers[key] = set()
        return key

    def close(self, key: str) -> None:
        """The call ended: its viewers' streams end (a stalled viewer's oldest frame makes room for the end)."""
        for queue in self._viewers.pop(key, ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    def publish(self, key: str, frame: VideoFrame, show_in_s: float) -> None:
        """Hand ``frame`` to the call's viewers, to be shown ``show_in_s`` seconds from now."""
        due = time.monotonic() + max(0.0, show_in_s)
        for queue in self._viewers.get(key, ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait((due, frame.jpeg))

    def stream(self, key: str) -> AsyncIterator[bytes]:
        """The MJPEG body for one new viewer (checked here, before any response starts).

        Raises:
            KeyError: an unknown (or ended) call. TooManyViewers: the call has ``max_viewers`` already.
        """
        viewers = self._viewers[key]
        if len(viewers) >= self.max_viewers:
            raise TooManyViewers(f"at most {self.max_viewers} viewers of one call's avatar")
        queue: asyncio.Queue = asyncio.Queue(VIEWER_QUEUE)
        viewers.add(queue)
        return self._serve(viewers, queue)

    @staticmethod
    async def _serve(viewers: set[asyncio.Queue], queue: asyncio.Queue) -> AsyncIterator[bytes]:
        try:
            while (item := await queue.get()) is not None:
                due, jpeg = item
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                       + jpeg + b"\r\n")
        finally:
            viewers.discard(queue)
