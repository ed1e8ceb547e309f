"""Reading an eval directory: ``manifest.jsonl`` rows (format of ../shared/eval_audio) and their audio."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oviya.audio import read_wav

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Clip:
    """One manifest row. ``path`` is absolute; other fields as in the manifest (missing ones are None)."""

    path: Path
    category: str
    transcript: str | None
    speech_regions: list[tuple[float, float]] | None
    row: dict

    def audio(self) -> np.ndarray:
        """The clip as ``np.ndarray[float32]`` (n,), 16 kHz mono."""
        return read_wav(self.path, SAMPLE_RATE)[0]


def load_manifest(data_dir: Path) -> list[Clip]:
    """All rows of ``data_dir/manifest.jsonl`` whose audio file exists; [] when there is no manifest."""
    path = Path(data_dir) / "manifest.jsonl"
    if not path.is_file():
        return []
    clips = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        file = Path(data_dir) / row["file"]
        if not file.is_file():
            continue
        regions = row.get("speech_regions")
        clips.append(Clip(
            path=file, category=row.get("category", ""), transcript=row.get("transcript"),
            speech_regions=[(r["start"], r["end"]) for r in regions] if regions is not None else None, row=row,
        ))
    return clips


def speech_bounds(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, below_peak_db: float = 40.0,
                  floor_dbfs: float = -55.0) -> tuple[float, float] | None:
    """(start_s, end_s) of the speech in a single-utterance clip by energy: 10 ms frames above
    max(peak − ``below_peak_db``, ``floor_dbfs``). The defaults are the trimming rule of eval_audio's README, which
    keeps breaths and room tails down to −55 dBFS; :func:`speech_span` uses a stricter rule for timing. None for a
    silent clip. Independent of Oviya's VAD."""
    n = sample_rate // 100
    frames = audio[: len(audio) // n * n].reshape(-1, n)
    if not len(frames):
        return None
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(db > max(db.max() - below_peak_db, floor_dbfs))
    if not len(loud):
        return None
    return loud[0] * n / sample_rate, (loud[-1] + 1) * n / sample_rate


SPEECH_BELOW_PEAK_DB = 30.0  # audible speech: 10 ms frames within 30 dB of the span's peak


def speech_span(audio: np.ndarray, start_s: float = 0.0, end_s: float | None = None,
                sample_rate: int = SAMPLE_RATE) -> tuple[float, float] | None:
    """The true (onset, end) of speech in [start_s, end_s] used as t = 0 for latency and barge-in timing (s): the
    first and last 10 ms frames within ``SPEECH_BELOW_PEAK_DB`` of the span's peak. The README's −40 dB/−55 dBFS
    trimming rule starts and ends on breaths, clicks and room tails, up to ~0.5 s away from the words."""
    lo = int(start_s * sample_rate)
    hi = len(audio) if end_s is None else int(end_s * sample_rate)
    bounds = speech_bounds(audio[lo:hi], sample_rate, SPEECH_BELOW_PEAK_DB, -70.0)
    return None if bounds is None else (start_s + bounds[0], start_s + bounds[1])
