"""``latency``: voice-to-voice latency of the turn engine on real utterances, stage by stage.

Each ``stt`` utterance is played in real time (20 ms frames) into a fresh :class:`~oviya.engine.TurnEngine` with the
real models, followed by silence. t = 0 is the true end of speech in the clip (:func:`eval.data.speech_span`), mapped
onto the engine's clock by the time its frame was pushed. ``v2v_ms`` = first reply frame out − t0. Replies are
rendered on a fast-forward clock once they start (playout costs no wall time; compute stages keep real time), so
the run takes about the clips' length plus a second each. Engine-internal stage timings come from the per-turn
record (``eot_delay_ms`` there is measured from the VAD's end of speech; ``true_eot_delay_ms`` from t0); each
stage's p50 and p95 go into the summary, and ``latency_waterfall.png`` shows every turn's stages on one axis from
the VAD's end of speech (:func:`eval.plots.waterfall`).

A/B (``--ab PROFILE`` or ``--ab key=value,...``): the run's configuration (A) and the other one (B), each with its
own models, play every clip in turn, the order alternating (A, B, B, A, …) so the machine's drifts fall on both;
the summary gives each side's figures and, per stage, the median over clips of B / A (``paired_ratio``). On these
shared machines only such a paired figure supports a before/after claim.

Preemptive replies (``turn.preemptive``): ``preempt_reused_rate`` (turns answered by the reply prepared during their
last pause), ``preempts_dropped_mean`` and ``preempt_wasted_ms_mean/p95`` (replies prepared at earlier pauses and
dropped unheard, and the wall time they ran, per turn).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
from tqdm import tqdm

from eval.context import Context
from eval.data import Clip, speech_span
from eval.plots import cdf, figure, waterfall
from eval.stats import paired_ratios, percentile
from eval.tasks.turn import CUTOFF_TOLERANCE_S
from oviya.clock import FastForwardClock
from oviya.components import Components, load_components
from oviya.config import Settings
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


async def one_turn(settings: Settings, components: Components, audio: np.ndarray,
                   end_s: float) -> tuple[TurnRecord | None, float]:
    """Play ``audio`` then silence into a fresh engine; (record of the first answered turn, clock time of t0)."""
    clock = FastForwardClock()
    clip = clip_then_silence(audio, REPLY_TIMEOUT_S)
    answer = FirstAnswer()

    def frame(k: int) -> np.ndarray | None:
        if answer.t_end is None and (k + 1) * FRAME_S >= end_s:  # pushed now: the clock maps the clip's time
            answer.t_end = clock.now() - ((k + 1) * FRAME_S - end_s)
        return clip(k)

    async with TurnEngine(components, settings, clock=clock) as engine:
        await play(engine, frame, answer, until=lambda: answer.record is not None)
    return answer.record, answer.t_end


def measure(ctx: Context, clip: Clip, settings: Settings, components: Components) -> tuple[dict, TurnRecord | None]:
    """One clip through one configuration: its row (ms) and the answered turn's record (None: no answer)."""
    audio = clip.audio()
    rec, t0 = asyncio.run(one_turn(settings, components, audio, speech_span(audio)[1]))
    row = {"file": str(clip.path.relative_to(ctx.data)), "v2v_ms": None}
    if rec is not None:
        row.update({
            "v2v_ms": round((rec.first_audio_out - t0) * 1000, 1),
            "true_eot_delay_ms": round((rec.eot - t0) * 1000, 1),
            **{k: v for k, v in rec.timings().items() if k in STAGES},
            "route": rec.route, "end_reason": rec.end_reason,
            "stt_reused": rec.stt_reused, "preempt_reused": rec.preempt == "reused",
            "preempts_dropped": rec.preempts_dropped, "preempt_wasted_ms": rec.preempt_wasted_ms,
            "user_text": rec.user_text, "reply_text": rec.reply_text,
            "stt_backend": rec.stt_backend, "llm_backend": rec.llm_backend, "tts_backend": rec.tts_backend,
        })
    return row, rec


def figures(rows: list[dict]) -> dict:
    """p50 / p95 of v2v and of every stage over the answered rows, the speculative-STT and preemptive-reply reuse
    rates, the preemptive replies' wasted work (dropped per turn, ms per turn: mean and p95), how many turns each
    route answered (``routes``: llm, safety, identity, fallback) and each chain member served per stage
    (``backends``)."""
    answered = [r for r in rows if r["v2v_ms"] is not None]
    out = {"n": len(rows), "answered": len(answered)}
    for key in ("v2v_ms", "true_eot_delay_ms", *STAGES):
        for q in (50, 95):
            out[f"{key.removesuffix('_ms')}_ms_p{q}"] = percentile([r[key] for r in answered], q)
    def mean(key: str, digits: int = 3) -> float | None:
        return round(sum(r[key] for r in answered) / len(answered), digits) if answered else None

    out["stt_reused_rate"], out["preempt_reused_rate"] = mean("stt_reused"), mean("preempt_reused")
    out["preempts_dropped_mean"], out["preempt_wasted_ms_mean"] = mean("preempts_dropped"), mean("preempt_wasted_ms", 1)
    out["preempt_wasted_ms_p95"] = percentile([r["preempt_wasted_ms"] for r in answered], 95)
    # a clip the safety router flags is answered without the LLM: its v2v is not an LLM turn's
    out["routes"] = dict(Counter(r["route"] for r in answered))
    # which chain member did each stage's work: a remote stage that silently fell back shows here
    out["backends"] = {stage: dict(Counter(r[f"{stage}_backend"] for r in answered if r[f"{stage}_backend"]))
                       for stage in ("stt", "llm", "tts")}
    return out


def _clips(ctx: Context) -> list[Clip]:
    clips = [c for c in ctx.clips if c.category == "stt" and c.row.get("duration_s", 0) <= 15.0]
    return clips[: ctx.limit(default=len(clips), quick=4)]


def run(ctx: Context) -> dict:
    clips = _clips(ctx)
    if not clips:
        return {"skipped": "no stt clips", "n": 0, "v2v_ms_p50": None, "v2v_ms_p95": None}
    if ctx.ab is not None:
        return run_ab(ctx, clips)
    rows, records = [], []
    for clip in tqdm(clips, desc="latency", file=ctx.progress):
        row, rec = measure(ctx, clip, ctx.settings, ctx.components())
        rows.append(row)
        records += [(rec, clip.path.stem)] if rec is not None else []
    ctx.write_rows("latency", rows)
    answered = [r for r in rows if r["v2v_ms"] is not None]
    with figure(ctx.out / "latency_cdf.png", "Voice-to-voice latency and its stages (CDF)") as ax:
        for key in ("v2v_ms", "true_eot_delay_ms", *STAGES):
            cdf(ax, [r[key] for r in answered], key)
        ax.set_xlabel("ms")
        ax.set_ylabel("share of turns")
        ax.legend(fontsize=8)
    with figure(ctx.out / "latency_waterfall.png", "Each turn's stages (ms from the VAD's end of speech)",
                size_in=(8, 1.5 + 0.3 * len(records))) as ax:
        waterfall(ax, [rec for rec, _ in records], [name for _, name in records])
    return figures(rows)


def run_ab(ctx: Context, clips: list[Clip]) -> dict:
    """A (the run's settings) and B (``ctx.ab``) on every clip, interleaved; each side's figures and the paired
    median ratios B / A."""
    sides = {"A": (ctx.settings, ctx.components()), "B": (ctx.ab, load_components(ctx.ab))}
    rows: list[dict] = []
    for i, clip in enumerate(tqdm(clips, desc="latency A/B", file=ctx.progress)):
        for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
            row, _ = measure(ctx, clip, *sides[side])
            rows.append({"config": side, **row})
    ctx.write_rows("latency", rows)
    side_a = figures([r for r in rows if r["config"] == "A"])
    return {**{k: side_a[k] for k in ("v2v_ms_p50", "v2v_ms_p95", "stt_ms_p50", "llm_ttft_ms_p50", "tts_ttfb_ms_p50")},
            "A": {"profile": ctx.settings.profile, **side_a},
            "B": {"profile": ctx.ab.profile, "overrides": ctx.ab_spec, **figures([r for r in rows if r["config"] == "B"])},
            "paired_ratio": paired_ratios(rows, ("v2v_ms", "true_eot_delay_ms", *STAGES)), "pairs": len(clips)}
