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


class FrameHub:
    """Live calls' frames, fanned out to their viewers."""

    def __init__(self) -> None:
        self._viewers: dict[str, set[asyncio.Queue]] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._viewers

    def open(self) -> str:
        """A new call's stream; returns its key."""
        key = secrets.token_urlsafe(16)
        self._viewers[key] = set()
        return key

    def close(self, key: str) -> None:
        """The call ended: its viewers' streams end."""
        for queue in self._viewers.pop(key, ()):
            queue.put_nowait(None)

    def publish(self, key: str, frame: VideoFrame, show_in_s: float) -> None:
        """Hand ``frame`` to the call's viewers, to be shown ``show_in_s`` seconds from now."""
        due = time.monotonic() + max(0.0, show_in_s)
        for queue in self._viewers.get(key, ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait((due, frame.jpeg))

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        """The MJPEG body for one viewer. Raises KeyError for an unknown (or ended) call."""
        viewers = self._viewers[key]
        queue: asyncio.Queue = asyncio.Queue(VIEWER_QUEUE)
        viewers.add(queue)
        try:
            while (item := await queue.get()) is not None:
                due, jpeg = item
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                       + jpeg + b"\r\n")
        finally:
            viewers.discard(queue)
