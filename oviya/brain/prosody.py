"""User emotion from the voice: prosodic features against the speaker's own baseline.

Features per utterance (librosa): loudness (RMS, dB), median F0 and its spread (pYIN, Mauch & Dixon 2014, in
semitones), and voiced-frame rate (a proxy for speaking rate). Each is turned into a z-score against the same speaker's
earlier utterances (speaker normalisation: absolute pitch and loudness say more about the speaker and the microphone
than about the emotion), then matched to the nearest emotion prototype in ``config/emotion.yaml`` — signs taken from
the vocal-affect literature (Banse & Scherer 1996; Juslin & Laukka 2003: anger and joy loud, high and variable; sadness
quiet, low, flat and slow; fear high and fast). No training data: it is a transparent baseline, not a classifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import librosa
import numpy as np

FEATURES = ("rms_db", "f0_st", "f0_spread_st", "voiced_rate")
SAMPLE_RATE = 16000
HOP = 320  # 20 ms frames
F0_MIN_HZ, F0_MAX_HZ = 65.0, 500.0  # adult speech (pYIN search range)


def features(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
    """Prosodic features of one utterance.

    Args:
        audio: ``np.ndarray[float32]`` shape (n,), mono, in [-1, 1].
    Returns:
        ``rms_db`` (mean RMS of non-silent frames, dBFS), ``f0_st`` / ``f0_spread_st`` (median F0 and its 10–90th
        percentile range, semitones re 100 Hz; NaN without voicing), ``voiced_rate`` (share of voiced frames).
    Raises:
        ValueError: empty audio.
    """
    if audio.size == 0:
        raise ValueError("empty audio")
    rms = librosa.feature.rms(y=audio, frame_length=2 * HOP, hop_length=HOP)[0]
    db = 20 * np.log10(rms + 1e-9)
    loud = db > db.max() - 40
    f0, voiced, _ = librosa.pyin(audio, fmin=F0_MIN_HZ, fmax=F0_MAX_HZ, sr=sample_rate, frame_length=4 * HOP,
                                 hop_length=HOP)
    st = 12 * np.log2(f0[voiced] / 100.0) if voiced.any() else np.array([np.nan])
    return {
        "rms_db": float(db[loud].mean()),
        "f0_st": float(np.nanmedian(st)),
        "f0_spread_st": float(np.nanpercentile(st, 90) - np.nanpercentile(st, 10)) if voiced.any() else float("nan"),
        "voiced_rate": float(voiced[: len(loud)][loud[: len(voiced)]].mean()) if loud.any() else 0.0,
    }


@dataclass
class SpeakerBaseline:
    """Running per-speaker statistics of :func:`features` (one per session in live use).

    Args:
        min_utterances: z-scores need at least this many utterances; before that :meth:`zscores` returns None.
    """

    min_utterances: int
    _rows: list[dict[str, float]] = field(default_factory=list)

    def add(self, feats: dict[str, float]) -> None:
        self._rows.append(feats)

    def zscores(self, feats: dict[str, float]) -> dict[str, float] | None:
        """``feats`` relative to the baseline (NaN features → 0), or None while the baseline is too small."""
        if len(self._rows) < self.min_utterances:
            return None
        out = {}
        for k in FEATURES:
            col = np.array([r[k] for r in self._rows], float)
            col = col[np.isfinite(col)]
            sd = col.std() if col.size > 1 else 0.0
            out[k] = 0.0 if not np.isfinite(feats[k]) or sd == 0 else float((feats[k] - col.mean()) / sd)
        return out


def nearest_emotion(z: dict[str, float], prototypes: dict[str, dict[str, float]]) -> str:
    """The prototype (emotion → expected z per feature) closest to ``z`` (Euclidean)."""
    def dist(proto: dict[str, float]) -> float:
        return sum((z[k] - proto.get(k, 0.0)) ** 2 for k in FEATURES)

    return min(prototypes, key=lambda label: dist(prototypes[label]))
