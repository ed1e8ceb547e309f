"""A MOCK external lip-sync service for tests: no lip-sync model (Wav2Lip, MuseTalk) can run on this CPU-only machine,
so this local server speaks the protocol of :mod:`oviya.avatar.lipsync` for real — multipart image + WAV in, an
MJPEG AVI video out (encoded with PyAV), one frame per 1 / fps s of audio — and draws the received face with a dark
bar whose height follows each frame's audio RMS, so tests can see the frames belong to the audio.

``mode``: ``ok``, ``error`` (HTTP 500) or ``garbage`` (200 with a body that is not video).
"""

from __future__ import annotations

import io

import av
import numpy as np
import soundfile as sf
from PIL import Image
from protocol_servers import LoopbackServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def make_video(face: np.ndarray, audio: np.ndarray, rate: int, fps: int) -> bytes:
    """An MJPEG AVI of ``face`` (uint8 RGB) with a mouth bar following ``audio`` (float) frame by frame."""
    step = rate / fps
    out = io.BytesIO()
    with av.open(out, "w", format="avi") as container:
        stream = container.add_stream("mjpeg", rate=fps)
        stream.width, stream.height, stream.pix_fmt = face.shape[1], face.shape[0], "yuvj420p"
        for k in range(max(1, int(round(len(audio) / step)))):
            seg = audio[int(k * step) : int((k + 1) * step)]
            rms = float(np.sqrt(np.mean(np.square(seg)))) if len(seg) else 0.0
            img = face.copy()
            bar = int(min(1.0, rms * 8) * face.shape[0] * 0.3)
            img[face.shape[0] * 2 // 3 : face.shape[0] * 2 // 3 + bar, face.shape[1] // 3 : face.shape[1] * 2 // 3] = 20
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


class MockLipSyncServer(LoopbackServer):
    """The mock service on 127.0.0.1 (a context manager); ``url`` is its endpoint; ``requests`` counts calls."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests = 0
        super().__init__(Starlette(routes=[Route("/lipsync", self._lipsync, methods=["POST"])]))
        self.url += "/lipsync"

    async def _lipsync(self, request: Request) -> Response:
        self.requests += 1
        if self.mode == "error":
            return Response("model crashed", status_code=500)
        if self.mode == "garbage":
            return Response(b"\x00not a video" * 100, media_type="video/x-msvideo")
        form = await request.form()
        face = np.asarray(Image.open(io.BytesIO(await form["image"].read())).convert("RGB"))
        audio, rate = sf.read(io.BytesIO(await form["audio"].read()), dtype="float32")
        return Response(make_video(face, audio, rate, int(form["fps"])), media_type="video/x-msvideo")
