"""End-of-turn strategies: when has the user finished speaking?

``SilenceWindow`` is the classic VAD rule used by most voice agents (e.g. pipecat's ``VADParams.stop_secs``,
FastRTC's ``ReplyOnPause``): the turn ends once silence has lasted ``turn.silence_ms`` after speech, or when the
utterance exceeds ``turn.max_utterance_s``.
"""

from __future__ import annotations

from typing import Literal, Protocol

from oviya.config import TurnSettings
from oviya.vad import SpeechSegmenter

EndReason = Literal["silence", "max_length"]


class TurnDetector(Protocol):
    """Decides the end of the user's turn from the VAD state, once per 32 ms chunk."""

    def end_of_turn(self, seg: SpeechSegmenter, turn_start_s: float, now_s: float) -> EndReason | None:
        """Return why the turn ends at stream time ``now_s`` (seconds), or None to keep listening."""
        ...


class SilenceWindow:
    """End the turn after ``silence_ms`` of silence, or when speech has run ``max_utterance_s``.

    Args:
        settings: ``config/default.yaml`` → ``turn``.
    """

    def __init__(self, settings: TurnSettings) -> None:
        self.settings = settings

    def end_of_turn(self, seg: SpeechSegmenter, turn_start_s: float, now_s: float) -> EndReason | None:
        if now_s - turn_start_s >= self.settings.max_utterance_s:
            return "max_length"
        if seg.speaking or seg.onset_pending or seg.last_speech_end_s is None:
            return None
        if now_s - seg.last_speech_end_s >= self.settings.silence_ms / 1000:
            return "silence"
        return None


def build_turn_detector(settings: TurnSettings) -> TurnDetector:
    """The detector named by ``turn.mode``."""
    if settings.mode == "vad_only":
        return SilenceWindow(settings)
    raise ValueError(f"unknown turn.mode {settings.mode!r}")
