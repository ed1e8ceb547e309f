"""``stt``: word error rate and real-time factor of the configured transcriber on the ``stt`` utterances.

WER with jiwer after lower-casing, punctuation removal and whitespace normalisation (references in the manifest
keep their casing and punctuation). RTF = transcription time / audio duration, summed over clips.
"""

from __future__ import annotations

import time

import jiwer
from tqdm import tqdm

from eval.context import Context
from eval.plots import figure

NORMALISE = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                           jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])


def wer(reference: str | list[str], hypothesis: str | list[str]) -> float:
    """Normalised word error rate (0..)."""
    return jiwer.wer(reference, hypothesis, reference_transform=NORMALISE, hypothesis_transform=NORMALISE)


def run(ctx: Context) -> dict:
    clips = [c for c in ctx.clips if c.category in ("stt", "stt_longform") and c.transcript]
    clips = clips[: ctx.limit(default=len(clips), quick=5)]
    if not clips:
        return {"skipped": "no clips with transcripts", "wer": None, "rtf": None}
    stt = ctx.components().stt
    rows, refs, hyps, spent, audio_s = [], [], [], 0.0, 0.0
    for clip in tqdm(clips, desc="stt", file=ctx.progress):
        audio = clip.audio()
        t0 = time.perf_counter()
        text = stt.transcribe(audio[: 120 * 16000]).text
        dt = time.perf_counter() - t0
        spent += dt
        audio_s += len(audio) / 16000
        refs.append(clip.transcript)
        hyps.append(text or "")
        rows.append({"file": str(clip.path.relative_to(ctx.data)), "wer": round(wer(clip.transcript, text or ""), 4),
                     "rtf": round(dt / (len(audio) / 16000), 4), "reference": clip.transcript, "hypothesis": text})
    ctx.write_rows("stt", rows)
    with figure(ctx.out / "stt_wer_per_clip.png", f"WER per clip ({ctx.settings.stt.model})") as ax:
        ax.barh([r["file"].split("/")[-1] for r in rows], [r["wer"] for r in rows])
        ax.set_xlabel("WER")
        ax.tick_params(axis="y", labelsize=6)
    return {"clips": len(rows), "model": ctx.settings.stt.model, "backend": stt.name, "wer": round(wer(refs, hyps), 4),
            "rtf": round(spent / audio_s, 4)}
