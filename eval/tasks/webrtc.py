"""``webrtc``: voice-to-voice latency through the real server and a real WebRTC client.

Each ``stt`` utterance of the manifest is played in real time as the microphone of a fresh aiortc call to
``python app.py`` (started on loopback unless ``--url`` is given). t = 0 is the end of speech in the clip (energy
rule of :func:`eval.data.speech_bounds`) on the client's clock; ``v2v_ms`` is the arrival of the first voiced reply
frame. This includes everything a user would wait for: transport both ways, end-of-turn, STT, LLM, TTS, playout.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from tqdm import tqdm

from eval.context import Context
from eval.data import speech_bounds
from eval.server import local_app
from eval.stats import percentile
from oviya.client import talk
from oviya.server.ice import restrict_ice_hosts

log = logging.getLogger(__name__)

LISTEN_S = 10.0  # the reply must start within this many seconds of the end of speech
RECORD_WAIT_S = 30.0  # upper bound on one call after the clip: reply start + its playout


def run(ctx: Context) -> dict:
    clips = [c for c in ctx.clips if c.category == "stt" and 1.0 <= c.row.get("duration_s", 0) <= 12.0]
    clips = clips[: ctx.limit(default=8, quick=5)]
    if not clips:
        return {"skipped": "no stt clips", "n": 0, "v2v_ms_p50": None, "v2v_ms_p95": None}
    restrict_ice_hosts(["127.0.0.1"])
    if ctx.url:
        return _measure(ctx, ctx.url, clips)
    with local_app(ctx.out / "webrtc_app.log", env={"OVIYA_SERVER__TRANSCRIPTS_DIR": str(ctx.out / "webrtc_transcripts")}) as url:
        return _measure(ctx, url, clips)


def measure_call(url: str, audio: np.ndarray) -> dict:
    """One call playing ``audio`` (float32, 16 kHz) as its microphone: client v2v (ms), the server's turn record's
    v2v and stage timings, the voiced reply (s) and the texts."""
    bounds = speech_bounds(audio)
    # keep listening after the first audio until the turn's record arrives (sent when the reply has played)
    result = asyncio.run(talk(url, audio, listen_s=RECORD_WAIT_S, until_answers=1))
    t_end = result.mic_started + bounds[1]
    turn = next(iter(result.answers()), {})
    return {
        "v2v_ms": result.v2v_ms(bounds[1], LISTEN_S),
        "server_v2v_ms": turn.get("v2v_ms"),
        **{k: turn.get(k) for k in ("eot_delay_ms", "stt_ms", "llm_ttft_ms", "tts_ttfb_ms")},
        "voiced_reply_s": round(result.voiced_s(t_end, t_end + LISTEN_S), 2),
        "user_text": turn.get("user_text"), "reply_text": turn.get("reply_text"),
    }


def _measure(ctx: Context, url: str, clips: list) -> dict:
    rows = [{"file": str(clip.path.relative_to(ctx.data)), **measure_call(url, clip.audio())}
            for clip in tqdm(clips, desc="webrtc", file=ctx.progress)]
    v2v = [r["v2v_ms"] for r in rows]
    summary = {
        "n": len(rows), "answered": sum(v is not None for v in v2v),
        "v2v_ms_p50": percentile(v2v, 50), "v2v_ms_p95": percentile(v2v, 95),
        "server_v2v_ms_p50": percentile([r["server_v2v_ms"] for r in rows], 50),
    }
    for k in ("eot_delay_ms", "stt_ms", "llm_ttft_ms", "tts_ttfb_ms"):
        summary[f"{k.removesuffix('_ms')}_ms_p50"] = percentile([r[k] for r in rows], 50)
    ctx.write_rows("webrtc", rows)
    return summary
