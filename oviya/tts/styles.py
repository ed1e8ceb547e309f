"""The emotion map: reply emotion label → voice style per TTS backend (``config/emotion_map.yaml``).

Editable while the app runs: :class:`EmotionMap` re-reads the file when its modification time changes (checked at
most once per reply, a ``stat`` call), and keeps the last valid map when an edit is broken.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger(__name__)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PiperStyle(_Model):
    length_scale: float = Field(gt=0, description="> 1 speaks slower (Piper's phoneme duration scale)")
    noise_scale: float = Field(ge=0, description="Piper's phoneme variation")
    pitch_semitones: float = Field(ge=-12, le=12)
    gain_db: float = Field(ge=-30, le=12, description="relative to the loudness target")
    pause_ms: int = Field(ge=0, le=2000, description="silence after each clause")


class PiperMap(_Model):
    loudness_dbfs: float = Field(le=0, description="RMS level every clause is brought to before its gain")
    styles: dict[str, PiperStyle]


class EspeakStyle(_Model):
    rate: int = Field(ge=80, le=450, description="words per minute")
    pitch: int = Field(ge=0, le=100)
    range: int = Field(ge=0, le=100)


class EspeakMap(_Model):
    voice: str
    styles: dict[str, EspeakStyle]


class CsmStyle(_Model):
    reference: str | None = Field(description="a clip of the emotion in the wanted voice (any sample rate)")
    transcript: str | None = Field(description="the reference clip's words")
    temperature: float = Field(ge=0, le=2, description="sampling temperature; 0 = greedy")


class CsmMap(_Model):
    styles: dict[str, CsmStyle]


Measure = Literal["f0", "rate", "rms"]


class AvatarExpression(_Model):
    brow: float = Field(ge=-1, le=1, description="eyebrow raise: -1 frown, 0 rest, 1 raised")
    smile: float = Field(ge=-1, le=1, description="mouth-corner curve: -1 down, 1 up")
    eyes: float = Field(ge=0.3, le=1.5, description="eye openness relative to rest")


class AvatarMap(_Model):
    styles: dict[str, AvatarExpression]


class EmotionMapFile(_Model):
    """``config/emotion_map.yaml``."""

    piper: PiperMap
    espeak: EspeakMap
    csm: CsmMap
    avatar: AvatarMap
    ordering: dict[Measure, list[tuple[str, str]]] = Field(
        description="pairs (lower, higher) that `python -m eval tts_style` checks")


    @model_validator(mode="after")
    def _same_labels(self) -> EmotionMapFile:
        if not set(self.piper.styles) == set(self.espeak.styles) == set(self.csm.styles) == set(self.avatar.styles):
            raise ValueError("piper, espeak, csm and avatar styles must name the same emotions")
        if bad := {e for pairs in self.ordering.values() for pair in pairs for e in pair} - set(self.piper.styles):
            raise ValueError(f"ordering names emotions without a style: {sorted(bad)}")
        return self


def read_emotion_map(path: Path) -> EmotionMapFile:
    """Parse and validate the file. Raises FileNotFoundError, yaml.YAMLError, pydantic.ValidationError."""
    return EmotionMapFile(**yaml.safe_load(path.read_text()))


class EmotionMap:
    """The live emotion map.

    Args:
        path: the YAML file.
        default: the label used for an unknown or missing emotion.
    Raises:
        the errors of :func:`read_emotion_map` for the initial read.
    """

    def __init__(self, path: Path, default: str = "neutral") -> None:
        self.path = path
        self.default = default
        self._mtime = path.stat().st_mtime_ns
        self.current = read_emotion_map(path)
        if default not in self.current.piper.styles:
            raise ValueError(f"{path}: no style for the default emotion {default!r}")

    def refresh(self) -> EmotionMapFile:
        """Re-read the file if it changed; a broken edit is logged and the previous map kept."""
        try:
            mtime = self.path.stat().st_mtime_ns
            if mtime != self._mtime:
                self._mtime = mtime
                new = read_emotion_map(self.path)
                if self.default not in new.piper.styles:
                    raise ValueError(f"no style for the default emotion {self.default!r}")
                self.current = new
                log.info("emotion map reloaded from %s", self.path)
        except (OSError, yaml.YAMLError, TypeError, ValueError) as e:  # ValueError covers ValidationError
            log.warning("emotion map %s not reloaded: %s", self.path, e)
        return self.current

    def piper(self, emotion: str | None) -> PiperStyle:
        return self._pick(self.current.piper.styles, emotion)

    def espeak(self, emotion: str | None) -> EspeakStyle:
        return self._pick(self.current.espeak.styles, emotion)

    def csm(self, emotion: str | None) -> CsmStyle:
        return self._pick(self.current.csm.styles, emotion)

    def avatar(self, emotion: str | None) -> AvatarExpression:
        return self._pick(self.current.avatar.styles, emotion)

    def _pick(self, styles: dict, emotion: str | None):
        """The style of ``emotion``; the default emotion's for None or an unknown label."""
        return styles.get(emotion or self.default) or styles[self.default]
