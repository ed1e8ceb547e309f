"""A procedural 2D face drawn with Pillow: the mouth follows the reply audio's loudness, eyes blink, the head bobs
gently, and brows, eyes and mouth corners take the reply emotion's expression from the emotion map.

Mouth openness per frame: the RMS level (dBFS) of the frame's audio mapped linearly from ``avatar.mouth_floor_dbfs``
(closed) to ``floor + mouth_range_db`` (open), smoothed with separate attack and release rates — the amplitude-
envelope lip sync of classic audio-driven cartoon rigs (e.g. Rhubarb's fallback mode, Live2D's "lip sync by
volume"), not phoneme-accurate visemes.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from oviya.audio import rms_dbfs
from oviya.avatar import AudioRun, AvatarFrame
from oviya.config import AvatarSettings
from oviya.tts.styles import AvatarExpression, EmotionMap

BOB_PERIOD_S = 4.0  # idle motion: a slow vertical drift of the head
BOB_PX = 0.012  # ... of this share of the frame height
SKIN, EYE, BROW, MOUTH, BACKGROUND = (236, 196, 164), (40, 40, 50), (90, 60, 40), (150, 40, 60), (226, 234, 242)


class ProceduralAvatar:
    """:class:`oviya.avatar.Avatar` drawn procedurally.

    Args:
        settings: the ``avatar`` section (fps, size, mouth mapping, blinks).
        styles: the live emotion map (its ``avatar`` section gives each emotion's expression).
    """

    def __init__(self, settings: AvatarSettings, styles: EmotionMap) -> None:
        self.s = settings
        self.styles = styles
        self.fps = settings.fps
        self._rng = np.random.default_rng(settings.seed)
        self._next_blink_ms = self._blink_gap_ms()
        self._mouth = 0.0
        self._run = AudioRun(settings.fps)

    async def speak(self, pcm: np.ndarray, sample_rate: int, t_ms: float, emotion: str | None) -> list[AvatarFrame]:
        return self.draw(pcm, sample_rate, t_ms, emotion)

    def draw(self, pcm: np.ndarray, sample_rate: int, t_ms: float, emotion: str | None) -> list[AvatarFrame]:
        """:meth:`speak`, synchronously: drawing takes ~1 ms a frame (``python -m eval avatar``), no need to await."""
        self._run.add(pcm, sample_rate, t_ms)
        n = int(round(sample_rate / self.fps))
        frames = []
        while len(self._run) >= n:
            chunk, frame_t_ms = self._run.take(n)
            frames.append(self._draw(frame_t_ms, self._target(chunk), emotion))
        return frames

    async def finish(self) -> list[AvatarFrame]:
        return []  # a remainder under one frame is the reply's silent tail

    def idle(self, t_ms: float, emotion: str | None = None) -> AvatarFrame:
        return self._draw(t_ms, 0.0, emotion)

    def stop(self) -> None:
        self._run.clear()
        self._mouth = 0.0

    async def aclose(self) -> None:
        pass

    def _target(self, chunk: np.ndarray) -> float:
        level = rms_dbfs(chunk)
        return float(np.clip((level - self.s.mouth_floor_dbfs) / self.s.mouth_range_db, 0.0, 1.0))

    def _blink_gap_ms(self) -> float:
        low, high = self.s.blink_every_s
        return 1000.0 * float(self._rng.uniform(low, high))

    def _eyes_closed(self, t_ms: float) -> bool:
        while t_ms >= self._next_blink_ms + self.s.blink_ms:  # schedule is on the timeline, so frames agree
            self._next_blink_ms += self._blink_gap_ms()
        return t_ms >= self._next_blink_ms

    def _draw(self, t_ms: float, target: float, emotion: str | None) -> AvatarFrame:
        rate = self.s.mouth_attack if target > self._mouth else self.s.mouth_release
        self._mouth += (target - self._mouth) * rate
        expr = self.styles.avatar(emotion)
        image = render_face(self.s.width, self.s.height, self._mouth, expr, self._eyes_closed(t_ms),
                            bob=math.sin(2 * math.pi * t_ms / 1000.0 / BOB_PERIOD_S))
        return AvatarFrame(image, t_ms, self._mouth)


def render_face(width: int, height: int, mouth_open: float, expr: AvatarExpression, eyes_closed: bool,
                bob: float = 0.0) -> np.ndarray:
    """Draw one face. Returns ``np.ndarray[uint8]`` shape (height, width, 3).

    Args:
        mouth_open: 0 … 1. expr: brows, mouth corners, eye openness. bob: -1 … 1, idle head offset.
    """
    img = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(img)
    w, h = width, height
    cx, cy = w / 2, h / 2 + bob * BOB_PX * h
    d.ellipse([cx - 0.34 * w, cy - 0.42 * h, cx + 0.34 * w, cy + 0.42 * h], fill=SKIN)
    eye_y, eye_dx, eye_r = cy - 0.1 * h, 0.14 * w, 0.045 * w
    eye_h = 0.1 * eye_r if eyes_closed else eye_r * expr.eyes
    for side in (-1, 1):
        ex = cx + side * eye_dx
        d.ellipse([ex - eye_r, eye_y - eye_h, ex + eye_r, eye_y + eye_h], fill=EYE)
        # brows: raised with `brow`; a frown (brow < 0) also tilts their inner ends down
        by = eye_y - 0.09 * h - expr.brow * 0.035 * h
        inner = by + max(0.0, -expr.brow) * 0.03 * h
        outer_x, inner_x = ex + side * 0.07 * w, ex - side * 0.06 * w
        d.line([(outer_x, by), (inner_x, inner)], fill=BROW, width=max(2, w // 64))
    mouth_y, half_w = cy + 0.2 * h, 0.11 * w
    open_h, curve = mouth_open * 0.12 * h, expr.smile * 0.04 * h
    xs = np.linspace(-1.0, 1.0, 13)
    upper = [(cx + x * half_w, mouth_y - curve * x * x - 0.25 * open_h * (1 - x * x)) for x in xs]
    lower = [(cx + x * half_w, mouth_y - curve * x * x + 0.75 * open_h * (1 - x * x)) for x in xs]
    if mouth_open > 0.02:
        d.polygon(upper + lower[::-1], fill=MOUTH)
    else:
        d.line(upper, fill=MOUTH, width=max(2, w // 80))
    return np.asarray(img)
