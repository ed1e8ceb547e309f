"""One call's avatar video: frames for the reply audio as the engine releases it, idle frames while Oviya listens.

Timing: every frame carries ``timestamp_ms``, the time on the call's clock (ms since the stream started) at which
its first audio sample is due to sound (idle frames: the time they were drawn). The engine releases reply audio
``audio.output_lead_ms`` before it is due, and a frame can be drawn once its 1 / fps s of audio has arrived, so a
frame is ready a little before or after its audio sounds. A/V drift of a frame is ``max(0, ready − timestamp)`` (ms):
how late it is for its audio; each turn's p95 goes into the turn record (target ≤ 40 ms, one frame at 25 fps).

The reply audio goes to the backend (``avatar.backend``: :class:`~oviya.avatar.procedural.ProceduralAvatar` or
:class:`~oviya.avatar.lipsync.LipSyncAvatar`) through a queue served by one task, so the audio path never waits for
a frame to be drawn, and frames keep their order. If the backend fails the rest of the turn is audio only (no
frames; ``on_fallback`` is told once); the next turn tries it again. Barge-in (:meth:`AvatarStream.on_flush`) closes
the mouth at once: queued audio is dropped, a pending backend call is cancelled and an idle frame goes out
immediately.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from oviya.aio import within
from oviya.avatar import Avatar, AvatarError, AvatarFrame
from oviya.avatar.lipsync import LipSyncAvatar
from oviya.avatar.procedural import ProceduralAvatar, render_face
from oviya.clock import Clock
from oviya.config import AvatarSettings
from oviya.events import AudioFlush, AudioOut, TranscriptEvent
from oviya.observer import EngineObserver
from oviya.tts.styles import EmotionMap

log = logging.getLogger(__name__)

DRIFT_PERCENTILE = 95


@dataclass
class VideoFrame:
    """An encoded frame as it goes to clients.

    Attributes:
        jpeg: the image, JPEG bytes (``avatar.jpeg_quality``).
        timestamp_ms: when to show it, ms on the call's clock (see the module docstring).
        frame_index: running count of this call's frames.
        width, height: pixels.
        mouth_open: 0 … 1 as drawn (None from an external service).
        speaking: a frame of reply audio (False: idle).
        audio_ms: for a speaking frame, the position of its first sample in the call's output audio (ms of audio
            handed to the transport before it), for clients that sync to their playback position; None when idle.
        drift_ms: ``max(0, ready − timestamp_ms)``; 0 for idle frames.
    """

    jpeg: bytes
    timestamp_ms: float
    frame_index: int
    width: int
    height: int
    mouth_open: float | None
    speaking: bool
    audio_ms: float | None
    drift_ms: float = 0.0

    def message(self) -> dict:
        """The websocket ``video_frame`` event (without the image)."""
        return {"event": "video_frame", "timestamp_ms": round(self.timestamp_ms, 1), "frame_index": self.frame_index,
                "width": self.width, "height": self.height, "speaking": self.speaking,
                "mouth_open": None if self.mouth_open is None else round(self.mouth_open, 3),
                "audio_ms": None if self.audio_ms is None else round(self.audio_ms, 1), "format": "jpeg"}


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an ``np.ndarray[uint8]`` shape (h, w, 3) RGB image."""
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=quality)
    return out.getvalue()


def make_avatar(settings: AvatarSettings, styles: EmotionMap) -> Avatar:
    """The configured backend (``avatar.backend``).

    Raises:
        OSError: ``avatar.lipsync.image`` cannot be read.
    """
    if settings.backend == "lipsync":
        return LipSyncAvatar(settings, service_face(settings, styles))
    return ProceduralAvatar(settings, styles)


def service_face(settings: AvatarSettings, styles: EmotionMap) -> np.ndarray:
    """The face a lip-sync service animates: ``avatar.lipsync.image`` if set, else the procedural face, neutral;
    ``np.ndarray[uint8]`` shape (height, width, 3) RGB.

    Raises:
        OSError: the configured image cannot be read.
    """
    if settings.lipsync.image is None:
        return render_face(settings.width, settings.height, 0.0, styles.avatar(None), False)
    image = Image.open(settings.lipsync.image).convert("RGB").resize((settings.width, settings.height))
    return np.asarray(image)


class AvatarStream(EngineObserver):
    """Video frames for one call, handed to ``sink`` as they are ready. Call :meth:`run` as a task for the idle
    frames and the backend's work, and hand it the call's events (:func:`oviya.observer.notify`): the reply's
    audio, its emotion (from the assistant's transcript line) and flushes.

    Args:
        settings: the ``avatar`` section.
        avatar: the backend (:func:`make_avatar`).
        clock: the engine's clock (seconds); ``AudioOut.due`` is on it.
        sink: called with each :class:`VideoFrame`, on the event loop.
        on_fallback: called with the reason when the backend fails (the turn goes on audio only).
    """

    def __init__(self, settings: AvatarSettings, avatar: Avatar, clock: Clock,
                 sink: Callable[[VideoFrame], None], on_fallback: Callable[[str], None] | None = None) -> None:
        self.s = settings
        self.avatar = avatar
        self.clock = clock
        self.sink = sink
        self.on_fallback = on_fallback
        self.frame_ms = 1000.0 / settings.fps
        self.t0 = clock.now()
        self._index = 0
        self._last_audio_ms = -float("inf")  # when reply audio last arrived (ms on the stream clock)
        self._turn_drift: list[float] = []
        self._failure: str | None = None  # the backend failed in this turn: audio only until it ends
        self._audio: asyncio.Queue[tuple[AudioOut, str | None, float, float]] = asyncio.Queue()
        self._work: asyncio.Task | None = None  # the backend call in progress
        self._pending = False  # audio handed to the backend may still make frames (a lip-sync window)
        self._offset = 0.0  # audio_ms - timestamp_ms of the current run of reply audio
        self._audio_ms = 0.0  # reply audio released in this call so far (ms)
        self._emotion: str | None = None  # the emotion of the reply being spoken

    def now_ms(self) -> float:
        return (self.clock.now() - self.t0) * 1000.0

    # --- input from the call ---------------------------------------------------------------------------------------
    def on_transcript(self, ev: TranscriptEvent) -> None:
        if ev.role == "assistant":
            self._emotion = ev.emotion

    def on_audio(self, ev: AudioOut) -> None:
        """Reply audio released by the engine; its position in the call's output audio is counted here."""
        audio_ms = self._audio_ms
        self._audio_ms += 1000.0 * len(ev.pcm) / ev.sample_rate
        self._last_audio_ms = self.now_ms()
        if self._failure is None:
            self._audio.put_nowait((ev, self._emotion, (ev.due - self.t0) * 1000.0, audio_ms))

    def on_flush(self, ev: AudioFlush) -> None:
        """Barge-in or pause: drop what is queued, cancel the backend's call, show a closed mouth now."""
        self._drop_queued_audio()
        if self._work is not None:
            self._work.cancel()
        self.avatar.stop()
        self._pending = False
        self._last_audio_ms = -float("inf")
        self._emit(self.avatar.idle(self.now_ms()), speaking=False, offset=None)

    def end_turn(self) -> tuple[int, float | None, str | None]:
        """Close a turn's books: (reply frames, their drift p95 in ms, the backend failure if any), then reset."""
        drift, failure = self._turn_drift, self._failure
        self._turn_drift, self._failure = [], None
        p95 = round(float(np.percentile(drift, DRIFT_PERCENTILE)), 1) if drift else None
        return len(drift), p95, failure

    def _drop_queued_audio(self) -> None:
        while not self._audio.empty():
            self._audio.get_nowait()

    # --- the stream's task -----------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the audio queue; idle frames at ``avatar.idle_fps`` while no reply audio arrives; the backend's
        buffered tail once the audio stops. Runs until cancelled."""
        self._emit(self.avatar.idle(self.now_ms()), speaking=False, offset=None)
        period = 1.0 / self.s.idle_fps
        next_idle = self.clock.now() + period
        try:
            while True:
                try:
                    item = await within(self._audio.get(), max(0.0, next_idle - self.clock.now()))
                except TimeoutError:
                    item = None
                if item is not None:
                    ev, emotion, t_ms, audio_ms = item
                    self._pending = True
                    await self._call(self.avatar.speak(ev.pcm, ev.sample_rate, t_ms, emotion), audio_ms - t_ms)
                    continue
                next_idle = self.clock.now() + period
                if self.now_ms() - self._last_audio_ms <= 2 * self.frame_ms:
                    continue  # speaking: the reply's frames are the video
                if self._pending:
                    self._pending = False
                    await self._call(self.avatar.finish(), self._offset)
                self._emit(self.avatar.idle(self.now_ms()), speaking=False, offset=None)
        finally:
            await self.avatar.aclose()

    async def _call(self, work, offset: float) -> None:
        """Run one backend call as a cancellable task; emit its frames, or fall back to audio only."""
        self._offset = offset
        self._work = asyncio.ensure_future(work)
        try:
            frames = await self._work
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # the stream itself is being cancelled
                raise
            return  # a barge-in cancelled the call
        except AvatarError as e:
            log.warning("avatar: %s; audio only for the rest of the turn", e)
            self._failure = str(e)
            self.avatar.stop()
            self._drop_queued_audio()
            if self.on_fallback is not None:
                self.on_fallback(str(e))
            return
        finally:
            self._work = None
        if self._failure is None:
            for frame in frames:
                self._emit(frame, speaking=True, offset=offset)

    def _emit(self, frame: AvatarFrame, speaking: bool, offset: float | None) -> None:
        drift = max(0.0, self.now_ms() - frame.timestamp_ms) if speaking else 0.0
        if speaking:
            self._turn_drift.append(drift)
        video = VideoFrame(encode_jpeg(frame.image, self.s.jpeg_quality), frame.timestamp_ms, self._index,
                           frame.width, frame.height, frame.mouth_open, speaking,
                           None if offset is None else frame.timestamp_ms + offset, drift)
        self._index += 1
        self.sink(video)
