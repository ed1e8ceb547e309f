"""``webrtc``: voice-to-voice latency through the real server and a real WebRTC client.

Each ``stt`` utterance of the manifest is played in real time as the microphone of a fresh aiortc call to
``python app.py`` (started on loopback unless ``--url`` is given). t = 0 is the end of speech in the clip (energy
rule of :func:`eval.data.speech_bounds`) on the client's clock; ``v2v_ms`` is the arrival of the first voiced reply
frame. This includes everything a user would wait for: transport both ways, end-of-turn, STT, LLM, TTS, playout.

The server's record of each answered turn arrives on the data channel: its stages give ``webrtc_waterfall.png`` (as
``latency``'s, from the VAD's end of speech) and p50/p95 per stage; ``client_path_ms`` = client v2v − server v2v is
what the way out adds (the player's lead, FastRTC's output queue, Opus, the client's jitter buffer; the server's t = 0
is the VAD's end of speech, so it also holds the VAD's release lag).
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from tqdm import tqdm

from eval.context import Context
from eval.data import speech_bounds
from eval.plots import figure, waterfall
from eval.server import local_app
from eval.stats import percentile
from eval.tasks.latency import STAGES
from oviya.client import talk
from oviya.events import TurnRecord
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
    v2v and stage timings, the voiced reply (s), the texts, and the record itself (``record``: its dict)."""
    bounds = speech_bounds(audio)
    # keep listening after the first audio until the turn's record arrives (sent when the reply has played)
    result = asyncio.run(talk(url, audio, listen_s=RECORD_WAIT_S, until_answers=1))
    t_end = result.mic_started + bounds[1]
    turn = next(iter(result.answers()), {})
    v2v = result.v2v_ms(bounds[1], LISTEN_S)
    server_v2v = turn.get("v2v_ms")
    return {
        "v2v_ms": v2v, "server_v2v_ms": server_v2v,
        "client_path_ms": round(v2v - server_v2v, 1) if v2v is not None and server_v2v is not None else None,
        **{k: turn.get(k) for k in STAGES}, "preempt": turn.get("preempt"),
        "voiced_reply_s": round(result.voiced_s(t_end, t_end + LISTEN_S), 2),
        "user_text": turn.get("user_text"), "reply_text": turn.get("reply_text"), "record": turn or None,
    }


def _measure(ctx: Context, url: str, clips: list) -> dict:
    rows = [{"file": str(clip.path.relative_to(ctx.data)), **measure_call(url, clip.audio())}
            for clip in tqdm(clips, desc="webrtc", file=ctx.progress)]
    v2v = [r["v2v_ms"] for r in rows]
    summary = {"n": len(rows), "answered": sum(v is not None for v in v2v)}
    for k in ("v2v_ms", "server_v2v_ms", "client_path_ms", *STAGES):
        for q in (50, 95):
            summary[f"{k.removesuffix('_ms')}_ms_p{q}"] = percentile([r[k] for r in rows], q)
    with_record = [r for r in rows if r["record"]]
    with figure(ctx.out / "webrtc_waterfall.png", "Each call's turn: stages on the server, ms from the VAD's end of "
                "speech", size_in=(8, 1.5 + 0.3 * len(with_record))) as ax:
        waterfall(ax, [TurnRecord.from_dict(r["record"]) for r in with_record],
                  [f"{r['file'].rsplit('/', 1)[-1]} (client v2v {r['v2v_ms']} ms)" for r in with_record])
    ctx.write_rows("webrtc", [{k: v for k, v in r.items() if k != "record"} for r in rows])
    return summary
