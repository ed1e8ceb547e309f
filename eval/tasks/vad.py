"""``vad``: how well Silero VAD marks speech on the manifest's speech segments, and which settings fit best.

Every clip with ``speech_regions`` (categories ``vad``, ``vad_conversation``, ``vad_constructed``, ``vad_negative``)
is scored per 32 ms chunk (speech = chunk centre inside a region). Silero's probabilities are computed once per
clip; the sweep re-segments them with :func:`oviya.vad.segment_probs` (the live segmentation), so it is cheap.

- ``roc_auc``: area under the chunk-level ROC of the raw probabilities (scikit-learn).
- ``f1``: chunk F1 of the configured ``vad`` settings.
- sweep: a grid over threshold, the hysteresis gap (neg_threshold = threshold − gap), min_speech_ms and
  min_silence_ms. Objective (documented choice): ``f1 − 0.5 × cutoff_rate``, where a cut-off is a true region that
  the segmentation splits in two (a false end of speech inside it, the VAD-level cause of cutting a user off).
  The best settings are written as a config snippet ``vad_best.yaml``.
"""

from __future__ import annotations

import itertools

import numpy as np
import yaml
from sklearn.metrics import f1_score, roc_auc_score, roc_curve

from eval.context import Context
from eval.data import Clip
from eval.plots import figure
from oviya import assets
from oviya.config import Settings
from oviya.vad import CHUNK_S, SileroModel, probabilities, segment_probs

CATEGORIES = ("vad", "vad_conversation", "vad_constructed", "vad_negative")
GRID = {
    "threshold": [0.3, 0.4, 0.5, 0.6, 0.7],
    "gap": [0.1, 0.15, 0.25],
    "min_speech_ms": [100, 250],
    "min_silence_ms": [100, 200, 300],
}
CUTOFF_WEIGHT = 0.5


def labels(regions: list[tuple[float, float]], n: int) -> np.ndarray:
    """Chunk labels: 1 where the chunk's centre lies inside a region."""
    centres = (np.arange(n) + 0.5) * CHUNK_S
    y = np.zeros(n, bool)
    for a, b in regions:
        y |= (centres >= a) & (centres < b)
    return y


def predict(probs: np.ndarray, settings) -> tuple[np.ndarray, list[tuple[float, float]]]:
    regions = segment_probs(probs, settings)
    return labels(regions, len(probs)), regions


def cutoffs(truth: list[tuple[float, float]], found: list[tuple[float, float]]) -> int:
    """True regions with a predicted end of speech strictly inside them, followed by more speech in them."""
    return sum(any(a < e < b and any(e < s < b for s, _ in found) for _, e in found) for a, b in truth)


def score(cases, settings) -> tuple[float, float]:
    ys, ps, cut, total = [], [], 0, 0
    for probs, truth, y in cases:
        p, found = predict(probs, settings)
        ys.append(y)
        ps.append(p)
        cut += cutoffs(truth, found)
        total += len(truth)
    f1 = f1_score(np.concatenate(ys), np.concatenate(ps), zero_division=0)
    return float(f1), cut / total if total else 0.0


def silero(settings: Settings) -> SileroModel:
    """The Silero VAD model (what each worker loads once)."""
    return SileroModel(assets.SILERO_VAD_ONNX.locate(), settings.vad.onnx_threads)


def clip_probabilities(model: SileroModel, clip: Clip) -> np.ndarray:
    """Silero's speech probability per 32 ms chunk of one clip."""
    return probabilities(model, clip.audio())


def run(ctx: Context) -> dict:
    clips = [c for c in ctx.clips if c.category in CATEGORIES and c.speech_regions is not None]
    clips = clips[: ctx.limit(default=len(clips), quick=6)]
    if not clips:
        return {"skipped": "no clips with speech_regions", "roc_auc": None, "f1": None, "best_threshold": None}
    all_probs = ctx.map(clip_probabilities, clips, setup=silero, desc="vad")
    cases = [(probs, clip.speech_regions, labels(clip.speech_regions, len(probs)))
             for clip, probs in zip(clips, all_probs)]
    y = np.concatenate([c[2] for c in cases])
    p = np.concatenate([c[0] for c in cases])
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None
    base = ctx.settings.vad
    f1, cut = score(cases, base)

    rows = []
    for th, gap, ms, sil in itertools.product(*GRID.values()):
        s = base.model_copy(update={"threshold": th, "neg_threshold": max(th - gap, 0.01),
                                    "min_speech_ms": ms, "min_silence_ms": sil})
        f, c = score(cases, s)
        rows.append({"threshold": th, "neg_threshold": round(s.neg_threshold, 2), "min_speech_ms": ms,
                     "min_silence_ms": sil, "f1": round(f, 4), "cutoff_rate": round(c, 4),
                     "objective": round(f - CUTOFF_WEIGHT * c, 4)})
    best = max(rows, key=lambda r: r["objective"])
    ctx.write_rows("vad", rows)
    snippet = {"vad": {k: best[k] for k in ("threshold", "neg_threshold", "min_speech_ms", "min_silence_ms")}}
    (ctx.out / "vad_best.yaml").write_text("# best settings of the last `python -m eval vad` run\n" + yaml.safe_dump(snippet))
    _plots(ctx, y, p, rows, base.threshold)
    return {
        "clips": len(clips), "chunks": len(y), "roc_auc": None if auc is None else round(auc, 4),
        "f1": round(f1, 4), "cutoff_rate": round(cut, 4), "best_threshold": best["threshold"],
        "best": {k: best[k] for k in ("threshold", "neg_threshold", "min_speech_ms", "min_silence_ms", "f1",
                                       "cutoff_rate")},
    }


def _plots(ctx: Context, y: np.ndarray, p: np.ndarray, rows: list[dict], current: float) -> None:
    if 0 < y.sum() < len(y):
        fpr, tpr, _ = roc_curve(y, p)
        with figure(ctx.out / "vad_roc.png", "Silero VAD: chunk-level ROC") as ax:
            ax.plot(fpr, tpr)
            ax.plot([0, 1], [0, 1], "--", color="grey")
            ax.set_xlabel("false positive rate")
            ax.set_ylabel("true positive rate")
    with figure(ctx.out / "vad_threshold_sweep.png", "VAD threshold sweep (best of the other settings)") as ax:
        ths = sorted({r["threshold"] for r in rows})
        for key in ("f1", "cutoff_rate", "objective"):
            ax.plot(ths, [max(r[key] for r in rows if r["threshold"] == t) if key != "cutoff_rate"
                          else min(r[key] for r in rows if r["threshold"] == t) for t in ths], marker="o", label=key)
        ax.axvline(current, color="grey", linestyle="--", label="configured")
        ax.set_xlabel("speech threshold")
        ax.legend()
