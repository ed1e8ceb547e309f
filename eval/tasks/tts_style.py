"""``tts_style``: does each emotion sound the way the emotion map says?

Every TTS backend of the chain speaks the same sentences in every emotion of ``config/emotion_map.yaml``. Per clip:
median F0 (librosa.pyin, Hz), speaking rate (words per second of speech, trailing pause excluded), RMS level (dBFS of
non-silent 20 ms frames) and time to first audio (ms). ``ordering_ok`` is true when, for every backend, each
(lower, higher) pair the map's ``ordering`` declares holds on the per-emotion medians. Plot: F0 vs rate per emotion.
"""

from __future__ import annotations

import asyncio
import time

import librosa
import numpy as np
from tqdm import tqdm

from eval.context import Context
from eval.plots import figure
from oviya.tts import Synthesizer
from oviya.tts.piper import level_dbfs

SENTENCES = [
    "I'm really glad you told me about your day.",
    "Let's take a moment and think about what comes next.",
    "That sounds like a lot to carry, and I'm here with you.",
    "We could go for a walk later if the weather stays nice.",
]


async def _speak(synth: Synthesizer, text: str, emotion: str) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    first, chunks = None, []
    async for chunk in synth.synthesize(text, emotion):
        first = first or time.perf_counter()
        chunks.append(chunk)
    return np.concatenate(chunks).astype(np.float32) / 32768, ((first or t0) - t0) * 1000


def measure(audio: np.ndarray, sample_rate: int, words: int) -> dict[str, float]:
    """F0 median (Hz), words per second of speech, RMS level (dBFS)."""
    f0, voiced, _ = librosa.pyin(audio, fmin=60, fmax=400, sr=sample_rate, frame_length=2048)
    trimmed, _ = librosa.effects.trim(audio, top_db=40)
    return {"f0_hz": float(np.nanmedian(f0[voiced])) if voiced.any() else float("nan"),
            "rate_wps": words / (len(trimmed) / sample_rate), "rms_dbfs": level_dbfs(audio, sample_rate // 50)}


def run(ctx: Context) -> dict:
    tts = ctx.components().tts
    emotion_map = tts.styles.refresh()
    emotions = list(emotion_map.piper.styles)
    sentences = SENTENCES[: ctx.limit(default=len(SENTENCES), quick=1)]
    rows = []
    jobs = [(s, e, t) for s in tts.synths for e in emotions for t in sentences]
    for synth, emotion, text in tqdm(jobs, desc="tts_style", file=ctx.progress):
        audio, first_ms = asyncio.run(_speak(synth, text, emotion))
        rows.append({"backend": synth.name, "emotion": emotion, "text": text, "first_audio_ms": round(first_ms, 1),
                     **{k: round(v, 2) for k, v in measure(audio, synth.sample_rate, len(text.split())).items()}})
    ctx.write_rows("tts_style", rows)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for synth in tts.synths:
        table[synth.name] = {
            e: {k: round(float(np.nanmedian([r[k] for r in rows if r["backend"] == synth.name and r["emotion"] == e])), 1)
                for k in ("f0_hz", "rate_wps", "rms_dbfs", "first_audio_ms")} for e in emotions}
    key = {"f0": "f0_hz", "rate": "rate_wps", "rms": "rms_dbfs"}
    failed = [f"{backend}: {measure_} {lo} !< {hi}" for backend, by_emotion in table.items()
              for measure_, pairs in emotion_map.ordering.items() for lo, hi in pairs
              if not by_emotion[lo][key[measure_]] < by_emotion[hi][key[measure_]]]
    with figure(ctx.out / "tts_style.png", "Voice style per emotion (median over sentences)") as ax:
        for backend, by_emotion in table.items():
            for e, m in by_emotion.items():
                ax.scatter(m["rate_wps"], m["f0_hz"], marker="o" if backend == tts.synths[0].name else "x")
                ax.annotate(f"{e} ({backend.split(':')[0]})", (m["rate_wps"], m["f0_hz"]), fontsize=7)
        ax.set_xlabel("speaking rate (words/s)")
        ax.set_ylabel("median F0 (Hz)")
    return {"sentences": len(sentences), "ordering_ok": not failed, "ordering_failures": failed,
            "first_audio_ms_p50": {b: round(float(np.median([r["first_audio_ms"] for r in rows if r["backend"] == b])), 1)
                                   for b in table}, "by_backend": table}
