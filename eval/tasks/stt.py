"""``stt``: word error rate and real-time factor of the configured transcriber on the ``stt`` utterances.

WER with jiwer after lower-casing, punctuation removal and whitespace normalisation (references in the manifest
keep their casing and punctuation). RTF = transcription time / audio duration, summed over clips.
"""

from __future__ import annotations

import time

import jiwer

from eval.context import Context
from eval.data import Clip
from eval.plots import figure
from oviya.components import build_stt
from oviya.config import Settings
from oviya.stt import Transcriber

NORMALISE = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                           jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])


def wer(reference: str | list[str], hypothesis: str | list[str]) -> float:
    """Normalised word error rate (0..)."""
    return jiwer.wer(reference, hypothesis, reference_transform=NORMALISE, hypothesis_transform=NORMALISE)


def transcriber(settings: Settings) -> Transcriber:
    """The configured STT chain (what each worker loads once)."""
    return build_stt(settings)


def transcribe(stt: Transcriber, clip: Clip) -> tuple[str, float, float, str | None]:
    """(hypothesis, seconds it took, audio seconds, the member that transcribed) for one clip (first 120 s)."""
    audio = clip.audio()
    t0 = time.perf_counter()
    result = stt.transcribe(audio[: 120 * 16000])
    return result.text or "", time.perf_counter() - t0, len(audio) / 16000, result.backend


def run(ctx: Context) -> dict:
    clips = [c for c in ctx.clips if c.category in ("stt", "stt_longform") and c.transcript]
    clips = clips[: ctx.limit(default=len(clips), quick=5)]
    if not clips:
        return {"skipped": "no clips with transcripts", "wer": None, "rtf": None}
    results = ctx.map(transcribe, clips, setup=transcriber, desc="stt")
    rows = [{"file": str(clip.path.relative_to(ctx.data)), "wer": round(wer(clip.transcript, text), 4),
             "rtf": round(dt / audio_s, 4), "reference": clip.transcript, "hypothesis": text}
            for clip, (text, dt, audio_s, _) in zip(clips, results)]
    ctx.write_rows("stt", rows)
    with figure(ctx.out / "stt_wer_per_clip.png", f"WER per clip ({ctx.settings.stt.model})") as ax:
        ax.barh([r["file"].split("/")[-1] for r in rows], [r["wer"] for r in rows])
        ax.set_xlabel("WER")
        ax.tick_params(axis="y", labelsize=6)
    return {"clips": len(rows), "model": ctx.settings.stt.model,
            "backend": sorted({b for *_, b in results if b}),
            "wer": round(wer([c.transcript for c in clips], [r[0] for r in results]), 4),
            "rtf": round(sum(r[1] for r in results) / sum(r[2] for r in results), 4)}
