"""Emotion labels: the user's emotion from their words, and the emotion Oviya answers with.

An inline tag in the LLM's output fails on the small embedded models (docs/architecture.md: greedy decoding always picks the
same tag), and a separate label call would compete with TTS for the two cores, so both labels come from text cues
that cost microseconds: word and phrase cues per emotion (``config/emotion.yaml``) with negation handling, and VADER
valence (Hutto & Gilbert 2014, ``vaderSentiment``) as the tie-breaker and fallback. The reply emotion is chosen from
the user's emotion *before* the LLM starts, so the first clause's voice never waits; :meth:`EmotionDetector.of_reply`
labels the finished reply's own words for the record.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from oviya.brain.embedding import SentenceEmbedder

NEGATIONS = {"not", "no", "never", "nothing", "hardly", "without"}
NEGATION_WINDOW = 3  # words before a cue that can negate it
VADER_STRONG = 0.5  # |compound| beyond which valence alone decides happy / sad (VADER's "strong" band)


class AcousticConfig(BaseModel):
    """``acoustic`` section: the voice-based user emotion (:mod:`oviya.brain.prosody`)."""

    model_config = ConfigDict(extra="forbid")

    min_utterances: int = Field(ge=2)
    prototypes: dict[str, dict[str, float]]


class EmotionConfig(BaseModel):
    """``config/emotion.yaml``."""

    model_config = ConfigDict(extra="forbid")

    user_labels: list[str]
    reply_labels: list[str]
    reply_for_user: dict[str, str | None]
    safety_emotion: dict[Literal["crisis", "harmful"], str]
    cues: dict[str, list[str]]
    reply_cues: dict[str, list[str]]
    acoustic: AcousticConfig
    cue_weight: float = Field(ge=0, description="score a word cue adds to a label's embedding similarity")
    neutral_margin: float = Field(ge=0, description="an emotion must beat neutral's score by this much")
    examples: dict[str, list[str]] = Field(description="example sentences per user label (embedding centroids)")

    @model_validator(mode="after")
    def _consistent(self) -> EmotionConfig:
        for user, reply in self.reply_for_user.items():
            if user not in self.user_labels or (reply is not None and reply not in self.reply_labels):
                raise ValueError(f"reply_for_user: unknown label in {user!r}: {reply!r}")
        if bad := set(self.safety_emotion.values()) - set(self.reply_labels):
            raise ValueError(f"safety_emotion: unknown reply labels {sorted(bad)}")
        if bad := set(self.acoustic.prototypes) - set(self.user_labels):
            raise ValueError(f"acoustic prototypes for unknown labels: {sorted(bad)}")
        if bad := (set(self.cues) - set(self.user_labels)) | (set(self.reply_cues) - set(self.reply_labels)):
            raise ValueError(f"cues for unknown labels: {sorted(bad)}")
        if "neutral" not in self.user_labels:
            raise ValueError("user_labels must include neutral (the embedding layer's fallback)")
        if set(self.examples) != set(self.user_labels) or not all(self.examples.values()):
            raise ValueError(f"examples must give sentences for every user label {self.user_labels}")
        return self


def load_emotion_config(path: Path) -> EmotionConfig:
    """Read and validate ``config/emotion.yaml``. Raises FileNotFoundError / pydantic.ValidationError."""
    return EmotionConfig(**yaml.safe_load(path.read_text()))


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


class EmotionDetector:
    """Text emotion labels.

    Args:
        config: label sets, cue lists, example sentences and the user → reply mapping.
        embedder: sentence embeddings for the user's emotion (nearest centroid of ``examples`` plus word cues);
            None: word cues and VADER only.
    """

    def __init__(self, config: EmotionConfig, embedder: SentenceEmbedder | None = None) -> None:
        self.config = config
        self._user = {lab: [_tokens(c) for c in cues] for lab, cues in config.cues.items()}
        self._reply = {lab: [_tokens(c) for c in cues] for lab, cues in config.reply_cues.items()}
        self._embedder = embedder
        self._labels = list(config.examples)
        if embedder is not None:
            centroids = np.stack([embedder.embed(config.examples[lab]).mean(axis=0) for lab in self._labels])
            self._centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)

    @cached_property
    def _vader(self) -> SentimentIntensityAnalyzer:
        return SentimentIntensityAnalyzer()

    @staticmethod
    def _scores(words: list[str], cues: dict[str, list[list[str]]], negate: dict[str, str]) -> dict[str, float]:
        scores = dict.fromkeys(cues, 0.0)
        for label, phrases in cues.items():
            for phrase in phrases:
                n = len(phrase)
                for i in range(len(words) - n + 1):
                    if words[i : i + n] != phrase:
                        continue
                    if NEGATIONS & set(words[max(0, i - NEGATION_WINDOW) : i]):
                        if flipped := negate.get(label):
                            scores[flipped] += 1
                    else:
                        scores[label] += 1
        return scores

    def of_user(self, text: str) -> str:
        """The user's emotion (one of ``user_labels``) from what they said.

        With an embedder: the label whose example centroid is most similar (cosine) plus ``cue_weight`` per word cue,
        if it beats ``neutral`` by ``neutral_margin`` (blocking, one embedding: ~5 ms). Without: word cues with VADER valence, ``neutral`` without cues.
        """
        words = _tokens(text)
        scores = self._scores(words, self._user, {"happy": "sad", "sad": "happy"})
        if self._embedder is not None and text.strip():
            similarity = self._centroids @ self._embedder.embed([text])[0]
            total = {lab: float(sim) + self.config.cue_weight * scores.get(lab, 0.0)
                     for lab, sim in zip(self._labels, similarity)}
            best = max(total, key=total.__getitem__)
            return best if total[best] - total["neutral"] >= self.config.neutral_margin else "neutral"
        compound = self._vader.polarity_scores(text)["compound"] if text.strip() else 0.0
        if abs(compound) >= VADER_STRONG:
            scores["happy" if compound > 0 else "sad"] = scores.get("happy" if compound > 0 else "sad", 0) + 0.5
        best = max(scores.values(), default=0)
        if best <= 0:
            return "neutral"
        tied = [lab for lab, s in scores.items() if s == best]
        if len(tied) > 1 and compound:  # valence breaks ties: negative favours the negative emotions
            order = ["happy", "surprised"] if compound > 0 else ["sad", "angry", "fearful"]
            tied = [lab for lab in order if lab in tied] or tied
        return tied[0]

    def check_reply_label(self, label: str | None) -> None:
        """Raises ValueError unless ``label`` is None or one of the reply labels (``brain.reply_emotion``)."""
        if label is not None and label not in self.config.reply_labels:
            raise ValueError(f"brain.reply_emotion must be one of {self.config.reply_labels} or null, not {label!r}")

    def reply_for(self, user_emotion: str, default: str) -> str:
        """The emotion Oviya answers a ``user_emotion`` with (``default``: the persona's)."""
        return self.config.reply_for_user.get(user_emotion) or default

    def for_safety(self, crisis: bool) -> str:
        """The voice of a safety reply: a crisis or a declined harmful request."""
        return self.config.safety_emotion["crisis" if crisis else "harmful"]

    def of_reply(self, text: str, default: str) -> str:
        """The emotion of Oviya's own reply text (one of ``reply_labels``); ``default`` without cues."""
        scores = self._scores(_tokens(text), self._reply, {})
        best = max(scores.values(), default=0)
        return default if best <= 0 else next(lab for lab, s in scores.items() if s == best)
