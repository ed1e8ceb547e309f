"""``turn``: how fast and how safely the end of the user's turn is detected.

Each clip with known utterances is streamed through Oviya's :class:`~oviya.listener.Listener` (the same object the
engine uses) in 32 ms chunks, followed by 2 s of silence. Utterances: an ``stt`` clip is one utterance (its speech
span by the energy rule of :func:`eval.data.speech_bounds`; its inner pauses are mid-utterance); a
``vad_constructed`` clip has one utterance per manifest segment. Decisions run on stream time, so the run is fast
and deterministic; the measured compute time of each Smart Turn call is added to the decision it produced.

- ``eot_delay_ms``: end-of-turn decision − true end of the utterance, for the decision that closes it.
- ``cutoff_rate``: share of utterances in which a turn ended while the user was still mid-utterance (a decision
  whose detected speech end lies more than ``CUTOFF_TOLERANCE_S`` before the utterance's true end).

Both policies are reported (``by_mode``); the top-level keys are the configured ``turn.mode``.

``sweep``: the same for Smart Turn at every (``min_silence_ms``, ``threshold``) of ``eval.turn_sweep_*`` — the curve
of end-of-turn delay against cut-off rate (``turn_curve.png``) to choose the operating point from.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from eval.context import Context
from eval.data import Clip, speech_bounds, speech_span
from eval.plots import figure
from eval.stats import percentile
from oviya.listener import EndOfTurn, Listener
from oviya.smart_turn import SmartTurnModel

CUTOFF_TOLERANCE_S = 0.3  # a decision this far before the true end is a cut-off (VAD boundaries are ±0.1 s)
TRAILING_SILENCE_S = 2.0
FEED = 512  # one VAD chunk per push


def utterances(clip: Clip, audio: np.ndarray) -> list[tuple[float, float]]:
    """Ground-truth (start_s, end_s) of the clip's utterances, or [] when the clip has none we can use. Ends are
    refined by :func:`eval.data.speech_span` (the labels' energy rule ends on breaths and tails)."""
    if clip.category == "stt":
        spans = [speech_bounds(audio)] if speech_bounds(audio) else []
    elif clip.category == "vad_constructed" and clip.row.get("segments"):
        spans = [(s["start"], s["end"]) for s in clip.row["segments"]]
    else:
        return []
    return [(a, (speech_span(audio, a, b) or (a, b))[1]) for a, b in spans]


def run_listener(ctx: Context, mode: str, audio: np.ndarray, smart: SmartTurnModel,
                 **smart_turn: float) -> list[tuple[EndOfTurn, float]]:
    """All end-of-turn decisions on ``audio`` (+ trailing silence), each with the part of the Smart Turn compute time
    that the decision waited for (s): the model runs ``ask_ahead_ms`` before it may decide. ``smart_turn``: changes
    to ``turn.smart_turn`` (e.g. ``min_silence_ms``, ``threshold``)."""
    turn = ctx.settings.turn
    turn = turn.model_copy(update={"mode": mode, "smart_turn": turn.smart_turn.model_copy(update=smart_turn)})
    settings = ctx.settings.model_copy(update={"turn": turn})
    asked: list[tuple[float, float]] = []  # (stream time of the call, compute s)
    now = [0.0]

    def timed(a: np.ndarray) -> float:
        t0 = time.perf_counter()
        p = smart.probability(a)
        asked.append((now[0], time.perf_counter() - t0))
        return p

    listener = Listener(ctx.components().vad, settings, timed)
    x = np.concatenate([audio, np.zeros(int(TRAILING_SILENCE_S * 16000), np.float32)])
    out = []
    for i in range(0, len(x), FEED):
        now[0] = (i + FEED) / 16000
        for _, events in listener.push(x[i : i + FEED]):
            for e in events:
                if isinstance(e, EndOfTurn):
                    wait = max((t + c - e.decided_s for t, c in asked[-1:] if e.probability is not None), default=0.0)
                    out.append((e, max(0.0, wait)))
    return out


def score(decisions: list[tuple[EndOfTurn, float]], truth: list[tuple[float, float]]) -> tuple[list[float], int]:
    """(eot delays in ms of the utterances that were closed, number of utterances with a cut-off)."""
    delays, cutoffs = [], 0
    for i, (start, end) in enumerate(truth):
        nxt = truth[i + 1][0] if i + 1 < len(truth) else float("inf")
        inside = [(e, c) for e, c in decisions if start < e.end_s and e.decided_s < nxt]
        if any(e.end_s < end - CUTOFF_TOLERANCE_S for e, _ in inside):
            cutoffs += 1
        closing = [(e, c) for e, c in inside if e.end_s >= end - CUTOFF_TOLERANCE_S]
        if closing:
            e, compute_s = closing[0]
            delays.append(round((e.decided_s + compute_s - end) * 1000, 1))
    return delays, cutoffs


def run(ctx: Context) -> dict:
    clips = [c for c in ctx.clips if c.category in ("stt", "vad_constructed")]
    clips = clips[: ctx.limit(default=len(clips), quick=6)]
    cases = [(c, a, u) for c in clips for a in [c.audio()] for u in [utterances(c, a)] if u]
    if not cases:
        return {"skipped": "no clips with utterance ground truth", "eot_delay_ms_p50": None, "cutoff_rate": None}
    smart = ctx.components().smart_turn or SmartTurnModel(ctx.settings.turn.smart_turn.onnx_threads)
    rows: list[dict] = []

    def measure(mode: str, label: str, **smart_turn: float) -> dict:
        delays, cutoffs, n = [], 0, 0
        for clip, audio, truth in tqdm(cases, desc=f"turn/{label}", file=ctx.progress):
            d, c = score(run_listener(ctx, mode, audio, smart, **smart_turn), truth)
            delays += d
            cutoffs += c
            n += len(truth)
            rows.append({"mode": mode, **smart_turn, "file": str(clip.path.relative_to(ctx.data)),
                         "utterances": len(truth), "eot_delay_ms": d, "cutoffs": c})
        return {"utterances": n, "eot_delay_ms_p50": percentile(delays, 50),
                "eot_delay_ms_p95": percentile(delays, 95), "cutoff_rate": round(cutoffs / n, 3),
                "closed_rate": round(len(delays) / n, 3)}

    by_mode = {mode: measure(mode, mode) for mode in ("vad_only", "smart_turn")}
    pauses, thresholds = ctx.settings.eval.turn_sweep_min_silence_ms, ctx.settings.eval.turn_sweep_thresholds
    if ctx.quick:  # a smoke run: the curve's two ends
        pauses, thresholds = [min(pauses), max(pauses)], thresholds[:1]
    sweep = [{"min_silence_ms": ms, "threshold": th,
              **measure("smart_turn", f"sweep {ms} ms, P>={th}", min_silence_ms=ms, threshold=th)}
             for ms in pauses for th in thresholds]
    ctx.write_rows("turn", rows)
    _plot_curve(ctx, sweep, by_mode)
    chosen = by_mode[ctx.settings.turn.mode]
    return {"mode": ctx.settings.turn.mode, "eot_delay_ms_p50": chosen["eot_delay_ms_p50"],
            "cutoff_rate": chosen["cutoff_rate"], "by_mode": by_mode, "sweep": sweep}


def _plot_curve(ctx: Context, sweep: list[dict], by_mode: dict) -> None:
    """End-of-turn delay p50 against cut-off rate: one line per threshold through its pauses, the configured point
    and vad_only marked."""
    with figure(ctx.out / "turn_curve.png", "End of turn: delay vs cutting people off (Smart Turn sweep)") as ax:
        for th in sorted({p["threshold"] for p in sweep}):
            pts = [p for p in sweep if p["threshold"] == th and p["eot_delay_ms_p50"] is not None]
            ax.plot([p["eot_delay_ms_p50"] for p in pts], [p["cutoff_rate"] for p in pts], marker="o",
                    label=f"P(complete) >= {th}")
            for p in pts:
                ax.annotate(f"{p['min_silence_ms']}", (p["eot_delay_ms_p50"], p["cutoff_rate"]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        for mode, marker in (("smart_turn", "*"), ("vad_only", "s")):
            m = by_mode[mode]
            if m["eot_delay_ms_p50"] is not None:
                ax.plot(m["eot_delay_ms_p50"], m["cutoff_rate"], marker, color="black", markersize=10,
                        label=f"{mode} (configured)")
        ax.set_xlabel("end-of-turn delay p50 (ms after the true end)")
        ax.set_ylabel("cut-off rate (utterances)")
        ax.legend(fontsize=7)
