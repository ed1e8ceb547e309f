"""What the handler copies of one server share: live sessions, metrics, limits, the transcript store, the avatar
streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from oviya.brain.memory import MemoryTokens
from oviya.metrics import Metrics
from oviya.server.call_component import PageCalls
from oviya.server.limits import CallLimits
from oviya.server.mjpeg import FrameHub
from oviya.transcripts import TranscriptStore

if TYPE_CHECKING:
    from oviya.server.handler import OviyaHandler


class SessionRegistry:
    """Live handlers by connection id (``webrtc_id`` / ``websocket_id``), so typed turns reach the right call."""

    def __init__(self) -> None:
        self._by_id: dict[str, OviyaHandler] = {}

    def add(self, session_id: str, handler: OviyaHandler) -> None:
        self._by_id[session_id] = handler

    def remove(self, session_id: str, handler: OviyaHandler) -> None:
        if self._by_id.get(session_id) is handler:
            del self._by_id[session_id]

    def get(self, session_id: str) -> OviyaHandler | None:
        return self._by_id.get(session_id)

    def __len__(self) -> int:
        return len(self._by_id)


@dataclass
class ServerState:
    """Shared by every call of one server.

    Attributes:
        memory_tokens: issues and checks the secrets that open a user's memory.
        faults_api: sessions get fault-injection wrappers (``server.faults_api``, tests only).
    """

    sessions: SessionRegistry
    metrics: Metrics
    limits: CallLimits
    transcripts: TranscriptStore
    frames: FrameHub
    memory_tokens: MemoryTokens
    faults_api: bool = False
    pages: PageCalls = field(default_factory=PageCalls)  # the Gradio pages' calls and wishes

    async def release(self, handler: OviyaHandler) -> None:
        """End a call, whatever its transport (WebRTC, websocket, the Gradio page) and however it ended (hang-up,
        dropped connection, limit): it leaves the registry and the limits, and :meth:`OviyaHandler.close` stops its
        tasks, writes its last turn and saves its memory. Safe to call more than once."""
        sid = handler.session_id
        if sid is not None and self.sessions.get(sid) is handler:
            self.sessions.remove(sid, handler)
            self.limits.close(sid)
            self.metrics.sessions.set(len(self.sessions))
        await handler.close()
