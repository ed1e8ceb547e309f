"""``avatar``: the call's avatar stream driven by real replies of the turn engine, on the real-time clock, and what
it costs in voice-to-voice latency.

Each ``stt`` utterance is played in real time into a fresh engine in pairs of runs (``REPEATS``, 3; quick 1), once
with an :class:`~oviya.avatar.stream.AvatarStream` beside it (as the app runs it: reply audio handed over as the
engine releases it, idle frames between, every frame drawn and JPEG-encoded on the same event loop) and once
without; the order alternates so slow drifts of this machine's load fall on both. Reported:

- ``drift_ms_p95``: A/V drift of the reply frames (``max(0, ready − due)``, :mod:`oviya.avatar.stream`), p95.
- ``mouth_audio_corr``: Pearson correlation of each reply frame's mouth openness with the RMS of its 1 / fps s of
  reply audio (located by the frame's ``audio_ms``).
- ``fps``: reply frames per second of reply audio; ``draw_ms_p50``: the backend's time per reply frame.
- ``v2v_ms_p50_on`` / ``v2v_ms_p50_off``, and ``v2v_overhead``: the median over pairs of v2v on / off, − 1 (one
  turn's v2v varies by ±40 % between runs here, with the LLM's reply and the end-of-turn timing; the paired median
  is the robust figure).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from tqdm import tqdm

from eval.context import Context
from eval.stats import percentile
from oviya.audio import to_float32
from oviya.avatar import Avatar, AvatarFrame
from oviya.avatar.stream import AvatarStream, VideoFrame, make_avatar
from oviya.config import CONFIG_DIR
from oviya.engine import AudioFlush, TurnEngine
from oviya.events import AudioOut, TranscriptEvent, TurnDone
from oviya.tts.styles import EmotionMap

FRAME_S = 0.02
REPLY_TIMEOUT_S = 20.0
REPEATS = 3


class TimedAvatar:
    """An :class:`~oviya.avatar.Avatar` whose ``speak`` calls are timed (ms per frame made)."""

    def __init__(self, avatar: Avatar) -> None:
        self.avatar = avatar
        self.ms: list[float] = []

    def __getattr__(self, name: str):  # noqa: ANN204 - the wrapped backend's other methods
        return getattr(self.avatar, name)

    async def speak(self, pcm: np.ndarray, sample_rate: int, t_ms: float, emotion: str | None) -> list[AvatarFrame]:
        t0 = time.perf_counter()
        frames = await self.avatar.speak(pcm, sample_rate, t_ms, emotion)
        if frames:
            self.ms.append((time.perf_counter() - t0) * 1000 / len(frames))
        return frames


async def one_turn(ctx: Context, audio: np.ndarray, with_avatar: bool) -> dict:
    """Play ``audio`` into a fresh engine until its first answered turn; its v2v, and the avatar's frames."""
    n = int(16000 * FRAME_S)
    frames: list[VideoFrame] = []
    pcm: list[np.ndarray] = []
    emotion, audio_ms, v2v = None, 0.0, None
    async with TurnEngine(ctx.components(), ctx.settings) as engine:
        video = None
        if with_avatar:
            av = ctx.settings.avatar
            timed = TimedAvatar(make_avatar(av, EmotionMap(CONFIG_DIR / ctx.settings.tts.emotion_map)))
            video = AvatarStream(av, timed, engine.clock, frames.append)
            idle = asyncio.create_task(video.run())
        loop = asyncio.get_running_loop()
        start, k, done = loop.time(), 0, False
        while not done and k * FRAME_S < len(audio) / 16000 + REPLY_TIMEOUT_S:
            engine.push_audio(audio[k * n : (k + 1) * n] if k * n < len(audio) else np.zeros(n, np.float32), 16000)
            k += 1
            while (ev := await engine.next_event(0)) is not None:
                if isinstance(ev, TranscriptEvent) and ev.role == "assistant":
                    emotion = ev.emotion
                elif isinstance(ev, AudioOut):
                    if video is not None:
                        video.on_audio(ev, emotion, audio_ms)
                    audio_ms += 1000.0 * len(ev.pcm) / ev.sample_rate
                    pcm.append(ev.pcm)
                elif isinstance(ev, AudioFlush) and video is not None:
                    video.flush()
                elif isinstance(ev, TurnDone) and ev.record.outcome == "answered":
                    done, v2v = True, ev.record.v2v_ms
            await asyncio.sleep(max(0.0, start + k * FRAME_S - loop.time()))
        if video is not None:
            idle.cancel()
            await asyncio.gather(idle, return_exceptions=True)
        out_rate = engine.out_rate
    reply = to_float32(np.concatenate(pcm)) if pcm else np.zeros(0, np.float32)
    speaking = [f for f in frames if f.speaking]
    step = int(out_rate / ctx.settings.avatar.fps)
    rms = [float(np.sqrt(np.mean(np.square(seg)))) if len(seg := reply[int(f.audio_ms * out_rate / 1000):][:step])
           else 0.0 for f in speaking]
    return {"v2v_ms": v2v, "frames": speaking, "rms": rms, "idle_frames": len(frames) - len(speaking),
            "draw_ms": timed.ms if with_avatar else [], "reply_s": len(reply) / out_rate}


def run(ctx: Context) -> dict:
    clips = [c for c in ctx.clips if c.category == "stt" and c.row.get("duration_s", 0) <= 8.0]
    clips = clips[: ctx.limit(default=8, quick=2)]
    if not clips:
        return {"skipped": "no stt clips", "drift_ms_p95": None, "mouth_audio_corr": None, "fps": None}
    rows, frames, rms, draw_ms, reply_s = [], [], [], [], 0.0
    v2v: dict[bool, list[float]] = {True: [], False: []}
    ratios = []
    repeats = 1 if ctx.quick else REPEATS
    for i, clip in enumerate(tqdm(clips, desc="avatar", file=ctx.progress)):
        for k in range(repeats):
            order = (True, False) if (i + k) % 2 == 0 else (False, True)
            runs = {w: asyncio.run(one_turn(ctx, clip.audio(), w)) for w in order}
            on, off = runs[True], runs[False]
            for w, r in runs.items():
                if r["v2v_ms"] is not None:
                    v2v[w].append(r["v2v_ms"])
            if on["v2v_ms"] and off["v2v_ms"]:
                ratios.append(on["v2v_ms"] / off["v2v_ms"])
            frames += on["frames"]
            rms += on["rms"]
            draw_ms += on["draw_ms"]
            reply_s += on["reply_s"]
            rows.append({"file": str(clip.path.relative_to(ctx.data)), "pair": k, "frames": len(on["frames"]),
                         "idle_frames": on["idle_frames"], "reply_s": round(on["reply_s"], 2),
                         "drift_ms_p95": percentile([f.drift_ms for f in on["frames"]], 95),
                         "v2v_ms_on": on["v2v_ms"], "v2v_ms_off": off["v2v_ms"]})
    ctx.write_rows("avatar", rows)
    drift = [f.drift_ms for f in frames]
    mouth = np.array([f.mouth_open for f in frames], float)
    level = np.array(rms)
    corr = float(np.corrcoef(mouth, level)[0, 1]) if len(frames) > 2 and mouth.std() > 0 and level.std() > 0 else None
    on, off = percentile(v2v[True], 50), percentile(v2v[False], 50)
    return {
        "drift_ms_p95": percentile(drift, 95), "drift_ms_max": round(max(drift), 1) if drift else None,
        "mouth_audio_corr": round(corr, 3) if corr is not None else None,
        "fps": round(len(frames) / reply_s, 2) if reply_s else None,
        "draw_ms_p50": percentile(draw_ms, 50), "frames": len(frames), "pairs": len(rows),
        "v2v_ms_p50_on": on, "v2v_ms_p50_off": off,
        "v2v_overhead": round(float(np.median(ratios)) - 1, 3) if ratios else None,
    }
