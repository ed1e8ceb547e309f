"""A Python WebRTC client for Oviya's API (aiortc): plays audio as the microphone, records the reply.

Used by the tests and the eval harness, and usable for scripting a running server::

    result = asyncio.run(talk("http://127.0.0.1:7860", audio16k, listen_s=10))

The microphone is paced in real time (20 ms frames), the received track is timestamped frame by frame on arrival,
and the data channel's Oviya events (transcripts, per-turn timing records) are kept.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from oviya.audio import resample, rms_dbfs, to_int16

MIC_RATE = 48000
FRAME_S = 0.02
VOICED_DBFS = -45.0  # a received 20 ms frame louder than this counts as voiced reply audio
SOUNDING_DBFS = -90.0  # ... and one louder than this carries any reply sound (between replies the track is zeros)


class FileMicrophone(MediaStreamTrack):
    """An audio track that plays a clip in real time, then silence.

    Args:
        audio: ``np.ndarray[float32]`` (n,) mono at ``sample_rate``.
        sample_rate: Hz of ``audio``; frames are sent at 48 kHz mono s16.
    Attributes:
        started_at, finished_at: ``time.monotonic()`` when the clip's first / last frame was sent.
    """

    kind = "audio"

    def __init__(self, audio: np.ndarray, sample_rate: int) -> None:
        super().__init__()
        self._pcm = to_int16(resample(audio.astype(np.float32), sample_rate, MIC_RATE))
        self._n = int(MIC_RATE * FRAME_S)
        self._k = 0
        self._t0: float | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        else:
            await asyncio.sleep(max(0.0, self._t0 + self._k * FRAME_S - now))
        i = self._k * self._n
        chunk = self._pcm[i : i + self._n]
        if len(chunk) and self.started_at is None:
            self.started_at = time.monotonic()
        if i < len(self._pcm) <= i + self._n:
            self.finished_at = time.monotonic()
        frame_pcm = np.zeros(self._n, np.int16)
        frame_pcm[: len(chunk)] = chunk
        frame = av.AudioFrame.from_ndarray(frame_pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = MIC_RATE
        frame.pts = self._k * self._n
        frame.time_base = fractions.Fraction(1, MIC_RATE)
        self._k += 1
        return frame


class OfferRefused(RuntimeError):
    """The server answered the offer with an error (HTTP ``status``, Oviya's error ``code``)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"offer refused: {status} {code} {detail}")
        self.status, self.code, self.detail = status, code, detail


@dataclass
class CallResult:
    """What one call heard.

    Attributes:
        frames: (arrival time ``time.monotonic()``, dBFS, seconds of audio) per received frame.
        audio: received audio, int16 mono at ``sample_rate``.
        events: Oviya data-channel events (``data`` of ``{"type": "oviya", ...}`` messages) in arrival order.
        mic_started, mic_finished: when the clip's first and last frames were sent.
        session_id, call_token: the call's id and its secret for call-scoped API requests (``X-Call-Token``).
    """

    sample_rate: int = 48000
    frames: list[tuple[float, float, float]] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    mic_started: float | None = None
    mic_finished: float | None = None
    session_id: str | None = None
    call_token: str | None = None

    def voiced_s(self, after: float, before: float) -> float:
        """Seconds of voiced received audio that arrived in [after, before]."""
        return sum(d for t, db, d in self.frames if after <= t <= before and db > VOICED_DBFS)

    def first_voiced_at(self, after: float, level_dbfs: float = VOICED_DBFS) -> float | None:
        """Arrival time of the first frame after ``after`` louder than ``level_dbfs`` (default: voiced)."""
        return next((t for t, db, _ in self.frames if t >= after and db > level_dbfs), None)

    def v2v_ms(self, speech_end_s: float, within_s: float) -> float | None:
        """Client-side voice-to-voice: the clip's end of speech (``speech_end_s`` into it) → first voiced reply
        frame, in ms; None when no reply started within ``within_s``."""
        if self.mic_started is None:
            return None
        t_end = self.mic_started + speech_end_s
        first = self.first_voiced_at(t_end)
        return round((first - t_end) * 1000, 1) if first is not None and first - t_end <= within_s else None

    def answers(self) -> list[dict]:
        """Per-turn records of turns that got a spoken reply."""
        return [e for e in self.events if e.get("event") == "turn" and e.get("reply_text")]

    def pcm(self) -> np.ndarray:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, np.int16)


async def talk(base_url: str, audio: np.ndarray, sample_rate: int = 16000, listen_s: float = 10.0,
               until_answers: int | None = None, timeout_s: float = 60.0, token: str | None = None,
               until_voiced_s: float | None = None,
               on_event: Callable[[dict], None] | None = None) -> CallResult:
    """Open a WebRTC call to ``base_url``, play ``audio`` as the microphone, and record the reply.

    Listens until ``listen_s`` after the clip ended, or until ``until_answers`` per-turn records of answered turns
    (a non-empty reply) arrived on the data channel, or until ``until_voiced_s`` seconds of voiced reply audio
    arrived after the clip (then hangs up mid-reply), whichever comes first, within an overall ``timeout_s``. ICE
    servers: none (host candidates only), so with ``oviya.server.ice.restrict_ice_hosts(["127.0.0.1"])`` the call
    stays on loopback. ``token``: the server's ``OVIYA_AUTH_TOKEN``, sent as a bearer token. ``on_event`` is called
    with each event of the data channel as it arrives (mid-call actions of a test).

    Raises:
        OfferRefused: the server refused the offer (``status``, ``code``: e.g. 401, 429 ``max_connections_per_client``).
        RuntimeError: the connection failed.
    """
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    mic = FileMicrophone(audio, sample_rate)
    result = CallResult()
    answered = asyncio.Event()
    channel = pc.createDataChannel("text")

    @channel.on("message")
    def on_message(message: str) -> None:
        try:
            msg = json.loads(message)
        except (TypeError, ValueError):
            return
        if isinstance(msg, dict) and msg.get("type") == "oviya":
            result.events.append(msg["data"])
            if on_event is not None:
                on_event(msg["data"])
            if until_answers and len(result.answers()) >= until_answers:
                answered.set()

    reader: asyncio.Task | None = None

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        nonlocal reader

        async def read() -> None:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=result.sample_rate)
            try:
                while True:
                    frame = await track.recv()
                    now = time.monotonic()
                    for f in resampler.resample(frame):
                        pcm = f.to_ndarray().reshape(-1)
                        result.audio.append(pcm)
                        result.frames.append((now, rms_dbfs(pcm), len(pcm) / result.sample_rate))
                    if until_voiced_s and mic.finished_at and result.voiced_s(mic.finished_at, now) >= until_voiced_s:
                        answered.set()
            except MediaStreamError:
                return

        reader = asyncio.ensure_future(read())

    pc.addTrack(mic)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        result.session_id = uuid.uuid4().hex
        async with httpx.AsyncClient(timeout=30, headers=headers) as http:
            r = await http.post(f"{base_url}/webrtc/offer", json={
                "sdp": pc.localDescription.sdp, "type": pc.localDescription.type, "webrtc_id": result.session_id})
        answer = r.json()
        if r.status_code != 200 or "sdp" not in answer:
            raise OfferRefused(r.status_code, answer.get("code", ""), str(answer.get("detail", answer)))
        result.call_token = answer.get("call_token")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        deadline = time.monotonic() + timeout_s
        while mic.finished_at is None and time.monotonic() < deadline:
            if pc.connectionState == "failed":
                raise RuntimeError("WebRTC connection failed")
            await asyncio.sleep(0.05)
        if mic.finished_at is None:
            raise RuntimeError(f"microphone clip not sent within {timeout_s} s (connection {pc.connectionState})")
        try:
            await asyncio.wait_for(answered.wait(), min(listen_s, max(0.0, deadline - time.monotonic())))
        except TimeoutError:
            pass
    finally:
        result.mic_started, result.mic_finished = mic.started_at, mic.finished_at
        await pc.close()
        if reader is not None:
            reader.cancel()
    return result
