"""``latency``: voice-to-voice latency of the turn engine on real utterances, stage by stage.

Each ``stt`` utterance is played in real time (20 ms frames) into a fresh :class:`~oviya.engine.TurnEngine` with the
real models, followed by silence. t = 0 is the true end of speech in the clip (:func:`eval.data.speech_span`), mapped
onto the engine's clock by the time its frame was pushed. ``v2v_ms`` = first reply frame out − t0. Replies are
rendered on a fast-forward clock once they start (playout costs no wall time; compute stages keep real time), so
the run takes about the clips' length plus a second each. Engine-internal stage timings come from the per-turn
record (``eot_delay_ms`` there is measured from the VAD's end of speech; ``true_eot_delay_ms`` from t0).
"""

from __future__ import annotations

import asyncio

import numpy as np
from tqdm import tqdm

from eval.context import Context
from eval.data import speech_span
from eval.plots import cdf, figure
from eval.stats import percentile
from eval.tasks.turn import CUTOFF_TOLERANCE_S
from oviya.clock import FastForwardClock
from oviya.engine import TurnEngine
from oviya.events import TurnDone, TurnRecord
from oviya.observer import EngineObserver
from oviya.realtime import FRAME_S, clip_then_silence, play

REPLY_TIMEOUT_S = 15.0
STAGES = ("eot_delay_ms", "stt_ms", "llm_ttft_ms", "first_clause_ms", "tts_ttfb_ms")


class FirstAnswer(EngineObserver):
    """The first turn answered at or after the true end of speech (earlier: a cut-off, which the turn task counts)."""

    def __init__(self) -> None:
        self.t_end: float | None = None  # the true end of speech on the engine's clock
        self.record: TurnRecord | None = None

    def on_turn_done(self, ev: TurnDone) -> None:
        if ev.record.outcome == "answered" and self.t_end is not None \
                and ev.record.eot >= self.t_end - CUTOFF_TOLERANCE_S:
            self.record = self.record or ev.record


async def one_turn(ctx: Context, audio: np.ndarray, end_s: float) -> tuple[TurnRecord | None, float]:
    """Play ``audio`` then silence into a fresh engine; (record of the first answered turn, clock time of t0)."""
    clock = FastForwardClock()
    clip = clip_then_silence(audio, REPLY_TIMEOUT_S)
    answer = FirstAnswer()

    def frame(k: int) -> np.ndarray | None:
        if answer.t_end is None and (k + 1) * FRAME_S >= end_s:  # pushed now: the clock maps the clip's time
            answer.t_end = clock.now() - ((k + 1) * FRAME_S - end_s)
        return clip(k)

    async with TurnEngine(ctx.components(), ctx.settings, clock=clock) as engine:
        await play(engine, frame, answer, until=lambda: answer.record is not None)
    return answer.record, answer.t_end


def run(ctx: Context) -> dict:
    clips = [c for c in ctx.clips if c.category == "stt" and c.row.get("duration_s", 0) <= 15.0]
    clips = clips[: ctx.limit(default=len(clips), quick=4)]
    if not clips:
        return {"skipped": "no stt clips", "n": 0, "v2v_ms_p50": None, "v2v_ms_p95": None}
    rows = []
    for clip in tqdm(clips, desc="latency", file=ctx.progress):
        audio = clip.audio()
        end_s = speech_span(audio)[1]
        rec, t0 = asyncio.run(one_turn(ctx, audio, end_s))
        row = {"file": str(clip.path.relative_to(ctx.data)), "v2v_ms": None}
        if rec is not None:
            row.update({
                "v2v_ms": round((rec.first_audio_out - t0) * 1000, 1),
                "true_eot_delay_ms": round((rec.eot - t0) * 1000, 1),
                **{k: v for k, v in rec.timings().items() if k in STAGES},
                "end_reason": rec.end_reason, "stt_reused": rec.stt_reused,
                "user_text": rec.user_text, "reply_text": rec.reply_text,
            })
        rows.append(row)
    ctx.write_rows("latency", rows)
    answered = [r for r in rows if r["v2v_ms"] is not None]
    with figure(ctx.out / "latency_cdf.png", "Voice-to-voice latency and its stages (CDF)") as ax:
        for key in ("v2v_ms", "true_eot_delay_ms", *STAGES):
            cdf(ax, [r[key] for r in answered], key)
        ax.set_xlabel("ms")
        ax.set_ylabel("share of turns")
        ax.legend(fontsize=8)
    summary = {
        "n": len(rows), "answered": len(answered),
        "v2v_ms_p50": percentile([r["v2v_ms"] for r in answered], 50),
        "v2v_ms_p95": percentile([r["v2v_ms"] for r in answered], 95),
        "true_eot_delay_ms_p50": percentile([r["true_eot_delay_ms"] for r in answered], 50),
    }
    for k in STAGES:
        summary[f"{k.removesuffix('_ms')}_ms_p50"] = percentile([r[k] for r in answered], 50)
    summary["stt_reused_rate"] = round(sum(r["stt_reused"] for r in answered) / len(answered), 3) if answered else None
    return summary
