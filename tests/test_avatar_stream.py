"""The call's avatar stream on real TTS audio (Piper), played in real time: idle frames while listening, reply frames
stamped with their audio time, barge-in closing the mouth at once, the external lip-sync path against a MOCK
protocol-level service (no lip-sync model runs here) with its audio-only fallback, and frames over the app's
websocket and MJPEG stream."""

import asyncio
import io
from itertools import pairwise

import httpx
import numpy as np
import pytest
from lipsync_server import MockLipSyncServer
from PIL import Image
from wsclient import live_call

from oviya.avatar.stream import AvatarStream, VideoFrame, make_avatar
from oviya.clock import RealClock
from oviya.config import AvatarSettings
from oviya.events import AudioFlush, AudioOut, TranscriptEvent


async def play(stream: AvatarStream, audio: np.ndarray, rate: int, seconds: float, lead_s: float) -> None:
    """Hand ``seconds`` of ``audio`` to the stream as the engine does: 20 ms frames, each released ``lead_s``
    (``audio.output_lead_ms``) before it is due."""
    n = int(rate * 0.02)
    t0 = stream.clock.now() + lead_s
    stream.on_transcript(TranscriptEvent("assistant", "What a lovely day!", 1, final=False, emotion="joyful"))
    for i in range(0, int(seconds * rate), n):
        due = t0 + i / rate
        await asyncio.sleep(max(0.0, due - lead_s - stream.clock.now()))
        stream.on_audio(AudioOut(audio[i : i + n], rate, due))


def lipsync_settings(settings, url: str) -> AvatarSettings:
    av = settings.avatar
    return av.model_copy(update={"backend": "lipsync", "lipsync": av.lipsync.model_copy(update={"url": url})})


def test_idle_then_reply_frames_then_barge_in_closes_the_mouth_at_once(settings, styles, reply_audio):
    audio, rate = reply_audio
    lead_s = settings.audio.output_lead_ms / 1000
    frames: list[VideoFrame] = []

    async def scenario() -> tuple:
        stream = AvatarStream(settings.avatar, make_avatar(settings.avatar, styles), RealClock(), frames.append)
        idle = asyncio.create_task(stream.run())
        await asyncio.sleep(0.5)
        listening = list(frames)
        await play(stream, audio, rate, seconds=1.6, lead_s=lead_s)
        before_flush = len(frames)
        stream.on_flush(AudioFlush())
        after_flush = frames[before_flush:]
        stats = stream.end_turn()
        await asyncio.sleep(0.3)
        idle.cancel()
        await asyncio.gather(idle, return_exceptions=True)
        return listening, before_flush, after_flush, stats

    listening, before_flush, after_flush, (n, drift_p95, failure) = asyncio.run(scenario())
    av = settings.avatar
    assert len(listening) >= 3 and not any(f.speaking for f in listening)
    assert all(f.mouth_open == 0 for f in listening)
    speaking = [f for f in frames[:before_flush] if f.speaking]
    assert abs(len(speaking) - 1.6 * av.fps) <= 1
    assert np.diff([f.timestamp_ms for f in speaking]) == pytest.approx(1000 / av.fps, abs=0.5)
    assert np.diff([f.audio_ms for f in speaking]) == pytest.approx(1000 / av.fps, abs=0.5)
    assert max(f.mouth_open for f in speaking) > 0.5
    assert len({f.jpeg for f in speaking}) > len(speaking) // 2  # the face moves while she speaks
    assert Image.open(io.BytesIO(speaking[0].jpeg)).size == (av.width, av.height)
    # barge-in: a closed-mouth frame goes out within the flush call itself
    assert len(after_flush) == 1 and not after_flush[0].speaking and after_flush[0].mouth_open == 0
    assert n == len(speaking) and drift_p95 is not None and drift_p95 >= 0 and failure is None
    assert not any(f.speaking for f in frames[before_flush:])
    assert len(frames) - before_flush >= 3  # listening again: idle frames go on


def test_lipsync_service_frames_and_audio_only_fallback_for_the_rest_of_the_turn(settings, styles, reply_audio):
    audio, rate = reply_audio
    lead_s = settings.audio.output_lead_ms / 1000
    frames: list[VideoFrame] = []
    fallbacks: list[str] = []

    with MockLipSyncServer() as service:
        av = lipsync_settings(settings, service.url)

        async def turn(stream: AvatarStream, mode: str) -> tuple:
            service.mode = mode
            start, requests = len(frames), service.requests
            await play(stream, audio, rate, seconds=1.5, lead_s=lead_s)
            await asyncio.sleep(1.0)  # the last window goes out once the audio stops; its video comes back
            return [f for f in frames[start:] if f.speaking], stream.end_turn(), service.requests - requests

        async def scenario() -> list:
            stream = AvatarStream(av, make_avatar(av, styles), RealClock(), frames.append, on_fallback=fallbacks.append)
            idle = asyncio.create_task(stream.run())
            results = [await turn(stream, mode) for mode in ("ok", "error", "ok")]
            idle.cancel()
            await asyncio.gather(idle, return_exceptions=True)
            return results

        (ok1, stats1, req1), (failed, stats2, req2), (ok2, stats3, _) = asyncio.run(scenario())

    # frames from the service, one per 1 / fps s of audio, stamped on the audio timeline
    assert abs(len(ok1) - 1.5 * av.fps) <= 2, len(ok1)
    assert all(b.timestamp_ms > a.timestamp_ms for a, b in pairwise(ok1))
    assert Image.open(io.BytesIO(ok1[0].jpeg)).size == (av.width, av.height)
    assert len({f.jpeg for f in ok1}) > 3  # the mock's mouth bar follows the audio
    assert stats1[0] == len(ok1) and stats1[1] is not None and stats1[2] is None and req1 >= 3
    # a failing service: told once, no frames and no more requests for the rest of the turn
    assert failed == [] and req2 == 1
    assert len(fallbacks) == 1 and "500" in fallbacks[0] and stats2 == (0, None, fallbacks[0])
    # the next turn tries the service again
    assert abs(len(ok2) - 1.5 * av.fps) <= 2 and stats3[2] is None


@pytest.mark.parametrize("mode", ["garbage", "down"])
def test_lipsync_service_garbage_or_down_falls_back_to_audio_only(settings, styles, reply_audio, mode):
    audio, rate = reply_audio
    lead_s = settings.audio.output_lead_ms / 1000
    frames: list[VideoFrame] = []
    fallbacks: list[str] = []
    with MockLipSyncServer() as service:
        service.mode = mode
        url = service.url if mode != "down" else "http://127.0.0.1:9/lipsync"  # port 9 (discard): nothing listens

        async def scenario() -> tuple:
            av = lipsync_settings(settings, url)
            stream = AvatarStream(av, make_avatar(av, styles), RealClock(), frames.append, on_fallback=fallbacks.append)
            idle = asyncio.create_task(stream.run())
            await play(stream, audio, rate, seconds=1.0, lead_s=lead_s)
            await asyncio.sleep(0.5)
            idle.cancel()
            await asyncio.gather(idle, return_exceptions=True)
            return stream.end_turn()

        frames_n, _, failure = asyncio.run(scenario())
    assert frames_n == 0 and not any(f.speaking for f in frames)
    assert any(not f.speaking for f in frames)  # the still face while listening
    assert fallbacks == [failure] and ("not decodable" in failure if mode == "garbage" else "unreachable" in failure)


def read_mjpeg_parts(url: str, n: int, timeout: float = 10.0) -> list[bytes]:
    """The first ``n`` JPEG parts of an MJPEG (multipart/x-mixed-replace) stream."""
    parts, buf = [], b""
    with httpx.stream("GET", url, timeout=timeout) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("multipart/x-mixed-replace")
        for chunk in r.iter_bytes():
            buf += chunk
            while (start := buf.find(b"\xff\xd8")) >= 0 and (end := buf.find(b"\xff\xd9", start)) >= 0:
                parts.append(buf[start : end + 2])
                buf = buf[end + 2 :]
            if len(parts) >= n:
                return parts
    return parts


def test_websocket_call_streams_frames_idle_while_listening_and_moving_while_speaking(app_server, clip, settings):
    audio, _ = clip("stt/picovoice-cheetah/test_en.wav")
    av = settings.avatar

    async def scenario() -> tuple:
        async with live_call(app_server) as (call, _http):
            announce = await call.wait_for(lambda e: e.get("event") == "avatar")
            mjpeg = asyncio.create_task(asyncio.to_thread(read_mjpeg_parts, app_server + announce["stream_url"], 3))
            await asyncio.sleep(1.0)
            listening = list(call.frames)
            await call.speak(audio)
            turn = (await call.wait_turns(1))[0]
            reply = [f for f in call.frames if f.get("speaking")]
            after = len(call.frames)
            await asyncio.sleep(1.0)
            return announce, listening, reply, call.frames[after:], turn, call.reply_audio(), await mjpeg

    announce, listening, reply, later, turn, reply_pcm, parts = asyncio.run(scenario())
    assert announce["state"] == "on"
    assert (announce["width"], announce["height"], announce["fps"]) == (av.width, av.height, av.fps)
    assert len(listening) >= 3 and all(not f["speaking"] and f["mouth_open"] == 0 for f in listening)
    assert all(f["width"] == av.width and f["height"] == av.height and f["format"] == "jpeg" for f in reply)
    assert Image.open(io.BytesIO(reply[0]["jpeg"])).size == (av.width, av.height)
    # one frame per 40 ms of the reply audio the client received, in order, stamped with rising audio times
    reply_s = len(reply_pcm) / settings.audio.output_sample_rate
    assert turn["outcome"] == "answered" and turn["avatar_frames"] == len(reply)
    assert abs(len(reply) - reply_s * av.fps) <= 0.05 * reply_s * av.fps + 2, (len(reply), reply_s)
    pairs = list(pairwise(reply))
    assert all(b["timestamp_ms"] > a["timestamp_ms"] and b["frame_index"] > a["frame_index"] for a, b in pairs)
    assert all(b["audio_ms"] > a["audio_ms"] for a, b in pairs)
    assert max(f["mouth_open"] for f in reply) > 0.5 and len({f["jpeg"] for f in reply}) > len(reply) // 2
    assert turn["av_drift_ms"] is not None and turn["av_drift_ms"] >= 0
    # listening again afterwards
    assert len(later) >= 3 and all(not f["speaking"] and f["mouth_open"] < 0.05 for f in later)
    # the browser's view of the same call: an MJPEG stream of decodable frames
    assert len(parts) == 3 and Image.open(io.BytesIO(parts[0])).size == (av.width, av.height)


def test_unknown_avatar_stream_is_404(app_server):
    assert httpx.get(app_server + "/avatar/not-a-key").status_code == 404
