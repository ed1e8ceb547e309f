"""``avatar``: the call's avatar stream driven by real replies of the turn engine, and what it costs the app in
voice-to-voice latency.

Frames: each ``stt`` utterance is played in real time into a fresh engine with an
:class:`~oviya.avatar.stream.AvatarStream` beside it, as the app runs it (reply audio handed over as the engine
releases it, idle frames between, every frame drawn and JPEG-encoded on the same event loop):

- ``drift_ms_p95``: A/V drift of the reply frames (``max(0, ready − due)``, :mod:`oviya.avatar.stream`), p95.
- ``mouth_audio_corr``: Pearson correlation of each reply frame's mouth openness with the RMS of its 1 / fps s of
  reply audio (located by the frame's ``audio_ms``).
- ``fps``: reply frames per second of reply audio; ``draw_ms_p50``: the backend's time per reply frame.

Cost: two servers (``python app.py``, avatar on and off) run side by side; every utterance is a real WebRTC call
(:func:`eval.tasks.webrtc.measure_call`) to each, ``REPEATS`` times (3; quick 1), the order alternating, so drifts
of this machine's load fall on both. ``v2v_ms_p50_on/off`` (client-side, as the ``webrtc`` task) and
``server_v2v_ms_p50_on/off`` (the turn records'); ``v2v_overhead`` and ``server_v2v_overhead``: the median over
pairs of on / off, − 1 (one call's v2v varies by ±40 % between runs here, with the LLM's reply and the end-of-turn
timing: the paired median is the robust figure). Skipped with ``--url``.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from tqdm import tqdm

from eval.context import Context
from eval.server import local_app
from eval.stats import percentile
from eval.tasks.webrtc import measure_call
from oviya.audio import to_float32
from oviya.avatar import Avatar, AvatarFrame
from oviya.avatar.stream import AvatarStream, VideoFrame, make_avatar
from oviya.engine import TurnEngine
from oviya.events import AudioOut, TurnDone
from oviya.observer import EngineObserver
from oviya.realtime import clip_then_silence, play
from oviya.server.ice import restrict_ice_hosts

REPLY_TIMEOUT_S = 20.0
REPEATS = 3


class TimedAvatar:
    """An :class:`~oviya.avatar.Avatar` whose ``speak`` calls are timed (ms per frame made)."""

    def __init__(self, avatar: Avatar) -> None:
        self.avatar = avatar
        self.ms: list[float] = []

    def __getattr__(self, name: str):
        return getattr(self.avatar, name)

    async def speak(self, pcm: np.ndarray, sample_rate: int, t_ms: float, emotion: str | None) -> list[AvatarFrame]:
        t0 = time.perf_counter()
        frames = await self.avatar.speak(pcm, sample_rate, t_ms, emotion)
        if frames:
            self.ms.append((time.perf_counter() - t0) * 1000 / len(frames))
        return frames


class ReplyAudio(EngineObserver):
    """The reply's audio until the first answered turn."""

    def __init__(self) -> None:
        self.pcm: list[np.ndarray] = []
        self.done = False

    def on_audio(self, ev: AudioOut) -> None:
        self.pcm.append(ev.pcm)

    def on_turn_done(self, ev: TurnDone) -> None:
        self.done = self.done or ev.record.outcome == "answered"


async def one_turn(ctx: Context, audio: np.ndarray) -> dict:
    """Play ``audio`` into a fresh engine with an avatar stream until its first answered turn; the frames."""
    frames: list[VideoFrame] = []
    components = ctx.components()
    reply = ReplyAudio()
    async with TurnEngine(components, ctx.settings) as engine:
        av = ctx.settings.avatar
        timed = TimedAvatar(make_avatar(av, components.tts.styles))  # the live emotion map, as the app uses
        video = AvatarStream(av, timed, engine.clock, frames.append)
        idle = asyncio.create_task(video.run())
        await play(engine, clip_then_silence(audio, REPLY_TIMEOUT_S), video, reply, until=lambda: reply.done)
        idle.cancel()
        await asyncio.gather(idle, return_exceptions=True)
        out_rate = engine.out_rate
    pcm = to_float32(np.concatenate(reply.pcm)) if reply.pcm else np.zeros(0, np.float32)
    speaking = [f for f in frames if f.speaking]
    step = int(out_rate / ctx.settings.avatar.fps)
    rms = [float(np.sqrt(np.mean(np.square(seg)))) if len(seg := pcm[int(f.audio_ms * out_rate / 1000):][:step])
           else 0.0 for f in speaking]
    return {"frames": speaking, "rms": rms, "idle_frames": len(frames) - len(speaking), "draw_ms": timed.ms,
            "reply_s": len(pcm) / out_rate}


def run(ctx: Context) -> dict:
    clips = [c for c in ctx.clips if c.category == "stt" and 1.0 <= c.row.get("duration_s", 0) <= 8.0]
    clips = clips[: ctx.limit(default=8, quick=2)]
    if not clips:
        return {"skipped": "no stt clips", "drift_ms_p95": None, "mouth_audio_corr": None, "fps": None}
    rows, frames, rms, draw_ms, reply_s = [], [], [], [], 0.0
    for clip in tqdm(clips, desc="avatar frames", file=ctx.progress):
        r = asyncio.run(one_turn(ctx, clip.audio()))
        frames += r["frames"]
        rms += r["rms"]
        draw_ms += r["draw_ms"]
        reply_s += r["reply_s"]
        rows.append({"file": str(clip.path.relative_to(ctx.data)), "frames": len(r["frames"]),
                     "idle_frames": r["idle_frames"], "reply_s": round(r["reply_s"], 2),
                     "drift_ms_p95": percentile([f.drift_ms for f in r["frames"]], 95)})
    ctx.write_rows("avatar", rows)
    drift = [f.drift_ms for f in frames]
    mouth = np.array([f.mouth_open for f in frames], float)
    level = np.array(rms)
    corr = float(np.corrcoef(mouth, level)[0, 1]) if len(frames) > 2 and mouth.std() > 0 and level.std() > 0 else None
    return {
        "drift_ms_p95": percentile(drift, 95), "drift_ms_max": round(max(drift), 1) if drift else None,
        "mouth_audio_corr": round(corr, 3) if corr is not None else None,
        "fps": round(len(frames) / reply_s, 2) if reply_s else None,
        "draw_ms_p50": percentile(draw_ms, 50), "frames": len(frames), "turns": len(rows),
        **({} if ctx.url else v2v_cost(ctx, clips)),
    }


def v2v_cost(ctx: Context, clips: list) -> dict:
    """Client and server v2v of real WebRTC calls to two servers, avatar on and off (module docstring)."""
    restrict_ice_hosts(["127.0.0.1"])
    env = {"OVIYA_SERVER__TRANSCRIPTS_DIR": str(ctx.out / "avatar_transcripts")}
    rows = []
    with (local_app(ctx.out / "avatar_app_on.log", env=env | {"OVIYA_AVATAR__ENABLED": "true"}) as url_on,
          local_app(ctx.out / "avatar_app_off.log", env=env | {"OVIYA_AVATAR__ENABLED": "false"}) as url_off):
        pairs = [(clip, k) for k in range(1 if ctx.quick else REPEATS) for clip in clips]
        for n, (clip, k) in enumerate(tqdm(pairs, desc="avatar v2v on/off", file=ctx.progress)):
            order = ((True, url_on), (False, url_off)) if n % 2 == 0 else ((False, url_off), (True, url_on))
            calls = {on: measure_call(url, clip.audio()) for on, url in order}
            rows.append({"file": str(clip.path.relative_to(ctx.data)), "pair": k,
                         **{f"{key}_{'on' if on else 'off'}": calls[on][key] for on in (True, False)
                            for key in ("v2v_ms", "server_v2v_ms")}})
    ctx.write_rows("avatar_v2v", rows)
    out = {}
    for key in ("v2v_ms", "server_v2v_ms"):
        on, off = [r[f"{key}_on"] for r in rows], [r[f"{key}_off"] for r in rows]
        ratios = [a / b for a, b in zip(on, off) if a and b]
        out |= {f"{key}_p50_on": percentile(on, 50), f"{key}_p50_off": percentile(off, 50),
                f"{key.removesuffix('_ms')}_overhead": round(float(np.median(ratios)) - 1, 3) if ratios else None}
    return out
