"""``emotion``: the user's emotion on the manifest's ``emotion`` clips (rows with an ``emotion`` label).

Each clip is transcribed by the configured STT and labelled from its words (:meth:`EmotionDetector.of_user`); when the
words carry no cue (acted corpora such as RAVDESS use neutral sentences), the voice decides
(:mod:`oviya.brain.prosody`): features are z-scored against all clips of the same ``speaker`` (a per-speaker
baseline, as a live session builds one over its turns) and matched to the nearest prototype. Labels outside
``user_labels`` are scored as errors. ``chance`` is the accuracy of always answering the most frequent label.
Plot: confusion matrix (scikit-learn).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix
from tqdm import tqdm

from eval.context import Context
from eval.plots import figure
from oviya.brain.prosody import SpeakerBaseline, features, nearest_emotion


def run(ctx: Context) -> dict:
    clips = [c for c in ctx.clips if c.category == "emotion" and c.row.get("emotion")]
    clips = clips[: ctx.limit(default=len(clips), quick=6)]
    if not clips:
        return {"skipped": "no clips with an emotion label", "accuracy": None, "chance": None}
    comps = ctx.components()
    detector = comps.emotion
    acoustic = detector.config.acoustic
    rows, baselines = [], defaultdict(lambda: SpeakerBaseline(acoustic.min_utterances))
    for clip in tqdm(clips, desc="emotion", file=ctx.progress):
        audio = clip.audio()
        text = comps.stt.transcribe(audio).text or ""
        feats = features(audio)
        speaker = clip.row.get("speaker") or str(clip.path)
        baselines[speaker].add(feats)
        rows.append({"file": str(clip.path.relative_to(ctx.data)), "speaker": speaker, "label": clip.row["emotion"],
                     "text": text, "text_emotion": detector.of_user(text), **{k: round(v, 3) for k, v in feats.items()}})
    for r in rows:
        z = baselines[r["speaker"]].zscores({k: r[k] for k in feats})
        r["voice_emotion"] = nearest_emotion(z, acoustic.prototypes) if z is not None else None
        r["predicted"] = r["text_emotion"] if r["text_emotion"] != "neutral" else (r["voice_emotion"] or "neutral")
    ctx.write_rows("emotion", rows)
    labels = sorted({r["label"] for r in rows} | {r["predicted"] for r in rows})
    cm = confusion_matrix([r["label"] for r in rows], [r["predicted"] for r in rows], labels=labels)
    with figure(ctx.out / "emotion_confusion.png", "User emotion: confusion matrix (rows = truth)") as ax:
        ConfusionMatrixDisplay(cm, display_labels=labels).plot(ax=ax, colorbar=False, xticks_rotation=45)
    n = len(rows)
    return {
        "clips": n, "labels": labels,
        "accuracy": round(sum(r["predicted"] == r["label"] for r in rows) / n, 4),
        "chance": round(Counter(r["label"] for r in rows).most_common(1)[0][1] / n, 4),
        "text_only_accuracy": round(sum(r["text_emotion"] == r["label"] for r in rows) / n, 4),
        "voice_used_rate": round(sum(r["text_emotion"] == "neutral" and r["voice_emotion"] is not None
                                     for r in rows) / n, 4),
    }
