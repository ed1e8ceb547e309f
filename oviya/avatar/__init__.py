"""The talking avatar: video frames in sync with Oviya's reply audio.

An avatar turns reply audio, as it is produced, into frames stamped with the audio time they belong to, and draws
idle frames while Oviya listens. Backends: ``procedural`` (a 2D face drawn with Pillow, mouth driven by the audio
envelope; oviya/avatar/procedural.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class AvatarFrame:
    """One video frame.

    Attributes:
        image: ``np.ndarray[uint8]`` shape (height, width, 3), RGB.
        timestamp_ms: the output-timeline time of the first audio sample this frame shows (ms).
        frame_index: running count of the avatar's frames.
        mouth_open: 0 (closed) … 1 (fully open), as drawn.
        audio_rms: RMS of the frame's audio, linear (0 … 1 of full scale); 0 for idle frames.
    """

    image: np.ndarray
    timestamp_ms: float
    frame_index: int
    mouth_open: float
    audio_rms: float = 0.0

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]


class Avatar(Protocol):
    """Frames for reply audio (``speak``), for listening (``idle``), and an immediate stop on barge-in."""

    fps: int

    def speak(self, pcm: np.ndarray, sample_rate: int, t_ms: float, emotion: str | None) -> list[AvatarFrame]:
        """Frames for ``pcm`` (``np.ndarray[int16]`` shape (n,), mono) whose first sample plays at ``t_ms``: one per
        whole ``1000 / fps`` ms of audio received so far (a remainder waits for the next call)."""
        ...

    def idle(self, t_ms: float, emotion: str | None = None) -> AvatarFrame:
        """A listening frame at ``t_ms``: mouth closed, blinks and idle motion."""
        ...

    def stop(self) -> None:
        """Barge-in: drop buffered audio; the next frame has the mouth closed."""
        ...
