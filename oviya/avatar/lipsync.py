"""The ``lipsync`` avatar backend: an external lip-sync service, for GPU deployments (a Wav2Lip / MuseTalk /
SadTalker model behind a small HTTP wrapper): a face image and a window of reply audio in, a short video of that
face speaking the audio out.

Protocol: ``POST {avatar.lipsync.url}`` as ``multipart/form-data`` with ``image`` (PNG), ``audio`` (WAV, 16-bit PCM,
mono) and ``fps`` (text); the answer is ``200`` with a video in any container and codec FFmpeg reads (MP4/H.264,
WebM, MJPEG AVI), one frame per ``1 / fps`` s of the audio. Frames are decoded with PyAV (FFmpeg's bindings).
"""

from __future__ import annotations

import asyncio
import io

import av
import httpx
import numpy as np
import soundfile as sf
from PIL import Image

from oviya.avatar import AudioRun, AvatarError, AvatarFrame
from oviya.config import AvatarSettings, LipSyncSettings


class LipSyncError(AvatarError):
    """The service could not be reached, failed, was too slow, or sent no decodable video."""


class LipSyncClient:
    """One call's connection to the service.

    Args:
        settings: ``avatar.lipsync`` (url, timeout).
        face_png: the face to animate, PNG bytes.
        fps, width, height: frames wanted; decoded frames are scaled to ``width`` × ``height``.
    """

    def __init__(self, settings: LipSyncSettings, face_png: bytes, fps: int, width: int, height: int) -> None:
        self.url = settings.url  # set: AvatarSettings refuses backend lipsync without it
        self.face_png = face_png
        self.fps, self.width, self.height = fps, width, height
        self._http = httpx.AsyncClient(timeout=settings.timeout_s)

    async def render(self, pcm: np.ndarray, sample_rate: int) -> list[np.ndarray]:
        """Frames of the face speaking ``pcm`` (``np.ndarray[int16]`` shape (n,), mono, ``sample_rate`` Hz).

        Returns:
            ``np.ndarray[uint8]`` shape (height, width, 3) RGB frames, at most one per ``1 / fps`` s of audio.

        Raises:
            LipSyncError: connection error, timeout, an error status, or a body without video frames.
        """
        wav = io.BytesIO()
        sf.write(wav, np.asarray(pcm, np.int16), sample_rate, format="WAV", subtype="PCM_16")
        files = {"image": ("face.png", self.face_png, "image/png"), "audio": ("audio.wav", wav.getvalue(), "audio/wav")}
        try:
            response = await self._http.post(self.url, files=files, data={"fps": str(self.fps)})
            response.raise_for_status()
        except httpx.HTTPStatusError as e:
            raise LipSyncError(f"lip-sync service answered {e.response.status_code}") from e
        except httpx.HTTPError as e:
            raise LipSyncError(f"lip-sync service unreachable: {type(e).__name__} {e}") from e
        wanted = max(1, int(round(len(pcm) / sample_rate * self.fps)))
        frames = await asyncio.to_thread(self._decode, response.content, wanted)
        if not frames:
            raise LipSyncError("lip-sync service sent no video frames")
        return frames

    def _decode(self, body: bytes, wanted: int) -> list[np.ndarray]:
        frames: list[np.ndarray] = []
        try:
            with av.open(io.BytesIO(body)) as container:
                for frame in container.decode(video=0):
                    frames.append(frame.to_ndarray(format="rgb24", width=self.width, height=self.height))
                    if len(frames) == wanted:
                        break
        except (av.FFmpegError, ValueError, IndexError) as e:  # IndexError: a container without a video stream
            raise LipSyncError(f"lip-sync video not decodable: {e}") from e
        return frames

    async def aclose(self) -> None:
        await self._http.aclose()


class LipSyncAvatar:
    """:class:`oviya.avatar.Avatar` backed by the service: reply audio is sent in windows of
    ``avatar.lipsync.window_ms`` (the last, shorter one by :meth:`finish`); idle frames show the still face.

    Args:
        settings: the ``avatar`` section (``backend: lipsync`` implies ``lipsync.url`` is set).
        face: the face to animate, ``np.ndarray[uint8]`` shape (height, width, 3) RGB; also the idle frame.
    """

    def __init__(self, settings: AvatarSettings, face: np.ndarray) -> None:
        self.fps = settings.fps
        self.window_ms = settings.lipsync.window_ms
        self.face = face
        png = io.BytesIO()
        Image.fromarray(face).save(png, "PNG")
        self.client = LipSyncClient(settings.lipsync, png.getvalue(), settings.fps, settings.width, settings.height)
        self._run = AudioRun(settings.fps)

    async def speak(self, pcm: np.ndarray, sample_rate: int, t_ms: float, emotion: str | None) -> list[AvatarFrame]:
        self._run.add(pcm, sample_rate, t_ms)
        if len(self._run) >= self.window_ms / 1000.0 * sample_rate:
            return await self.finish()
        return []

    async def finish(self) -> list[AvatarFrame]:
        if not len(self._run):
            return []
        rate = self._run.rate
        pcm, t_ms = self._run.take()
        images = await self.client.render(pcm, rate)
        return [AvatarFrame(image, t_ms + 1000.0 * i / self.fps, None) for i, image in enumerate(images)]

    def idle(self, t_ms: float, emotion: str | None = None) -> AvatarFrame:
        return AvatarFrame(self.face, t_ms, None)

    def stop(self) -> None:
        self._run.clear()

    async def aclose(self) -> None:
        await self.client.aclose()
