"""``avatar``: the procedural avatar driven by real replies of the turn engine, on the real-time clock.

Each ``stt`` utterance is played in real time into a fresh engine; every reply audio frame the engine releases is
handed to :class:`~oviya.avatar.procedural.ProceduralAvatar` as it comes (as an app would), and each video frame is
stamped with the audio time it shows. A frame can be shown at its timestamp if it is ready by then, so its A/V drift
is ``max(0, ready − timestamp)`` in ms (the engine releases audio ``audio.output_lead_ms`` early, which is the
renderer's budget). ``mouth_audio_corr``: Pearson correlation of mouth openness with the frame's audio RMS over all
reply frames; ``fps``: frames per second of reply audio; ``render_ms_p50``: time to draw one frame.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from tqdm import tqdm

from eval.context import Context
from eval.stats import percentile
from oviya.avatar.procedural import ProceduralAvatar
from oviya.config import CONFIG_DIR
from oviya.engine import AudioFlush, TurnEngine
from oviya.events import AudioOut, TranscriptEvent, TurnDone
from oviya.tts.styles import EmotionMap

FRAME_S = 0.02
REPLY_TIMEOUT_S = 20.0


async def one_turn(ctx: Context, audio: np.ndarray, avatar: ProceduralAvatar) -> dict:
    """Play ``audio`` into a fresh engine until its first answered turn; the avatar's frames and timings."""
    n = int(16000 * FRAME_S)
    frames, drift, render_ms, reply_s = [], [], [], 0.0
    emotion = None
    async with TurnEngine(ctx.components(), ctx.settings) as engine:
        loop = asyncio.get_running_loop()
        start, k, done = loop.time(), 0, False
        while not done and k * FRAME_S < len(audio) / 16000 + REPLY_TIMEOUT_S:
            engine.push_audio(audio[k * n : (k + 1) * n] if k * n < len(audio) else np.zeros(n, np.float32), 16000)
            k += 1
            while (ev := await engine.next_event(0)) is not None:
                if isinstance(ev, TranscriptEvent) and ev.role == "assistant":
                    emotion = ev.emotion
                elif isinstance(ev, AudioOut):
                    t0 = time.perf_counter()
                    new = avatar.speak(ev.pcm, ev.sample_rate, ev.due * 1000, emotion)
                    if new:
                        render_ms.append((time.perf_counter() - t0) * 1000 / len(new))
                    ready_ms = engine.clock.now() * 1000
                    drift += [max(0.0, ready_ms - f.timestamp_ms) for f in new]
                    frames += new
                    reply_s += len(ev.pcm) / ev.sample_rate
                elif isinstance(ev, AudioFlush):
                    avatar.stop()
                elif isinstance(ev, TurnDone) and ev.record.outcome == "answered":
                    done = True
            await asyncio.sleep(max(0.0, start + k * FRAME_S - loop.time()))
    avatar.stop()
    return {"frames": frames, "drift_ms": drift, "render_ms": render_ms, "reply_s": reply_s}


def run(ctx: Context) -> dict:
    clips = [c for c in ctx.clips if c.category == "stt" and c.row.get("duration_s", 0) <= 8.0]
    clips = clips[: ctx.limit(default=8, quick=2)]
    if not clips:
        return {"skipped": "no stt clips", "drift_ms_p95": None, "mouth_audio_corr": None, "fps": None}
    avatar = ProceduralAvatar(ctx.settings.avatar, EmotionMap(CONFIG_DIR / ctx.settings.tts.emotion_map))
    rows, frames, drift, render_ms, reply_s = [], [], [], [], 0.0
    for clip in tqdm(clips, desc="avatar", file=ctx.progress):
        r = asyncio.run(one_turn(ctx, clip.audio(), avatar))
        frames += r["frames"]
        drift += r["drift_ms"]
        render_ms += r["render_ms"]
        reply_s += r["reply_s"]
        rows.append({"file": str(clip.path.relative_to(ctx.data)), "frames": len(r["frames"]),
                     "reply_s": round(r["reply_s"], 2), "drift_ms_p95": percentile(r["drift_ms"], 95)})
    ctx.write_rows("avatar", rows)
    mouth = np.array([f.mouth_open for f in frames])
    rms = np.array([f.audio_rms for f in frames])
    corr = float(np.corrcoef(mouth, rms)[0, 1]) if len(frames) > 2 and mouth.std() > 0 and rms.std() > 0 else None
    return {
        "drift_ms_p95": percentile(drift, 95), "drift_ms_max": round(max(drift), 1) if drift else None,
        "mouth_audio_corr": round(corr, 3) if corr is not None else None,
        "fps": round(len(frames) / reply_s, 2) if reply_s else None,
        "render_ms_p50": percentile(render_ms, 50), "frames": len(frames), "turns": len(rows),
    }
