"""Streaming Silero VAD.

Silero VAD v6 (snakers4/silero-vad, MIT) as ONNX, run with onnxruntime over 512-sample chunks at 16 kHz (32 ms).
The model is stateful: each chunk is fed with the last 64 samples of the previous one as context and an LSTM state
of shape (2, 1, 128), exactly as ``silero_vad.utils_vad.OnnxWrapper`` does. Segmentation follows the hysteresis of
``silero_vad.get_speech_timestamps``: speech starts at ``threshold``, ends after ``min_silence_ms`` below
``neg_threshold``; bursts shorter than ``min_speech_ms`` are not reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from oviya.audio import AudioFormatError, Framer
from oviya.config import VADSettings

SAMPLE_RATE = 16000
CHUNK = 512  # samples per model call at 16 kHz (model card: 512 for 16 kHz)
CONTEXT = 64  # samples of the previous chunk prepended to each call (OnnxWrapper, context_size=64)
CHUNK_S = CHUNK / SAMPLE_RATE


class SileroModel:
    """The shared ONNX session (thread-safe to call with per-stream state).

    Args:
        path: ``silero_vad.onnx`` (v5/v6 signature: ``input`` (1, 576) float32, ``state`` (2, 1, 128), ``sr`` int64).
        threads: ONNX Runtime intra-op threads.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)

    def run(self, window: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        """One step. ``window``: float32 (1, 576) = context + chunk; returns (speech probability, new state)."""
        out, new_state = self._session.run(None, {"input": window, "state": state, "sr": self._sr})
        return float(out[0, 0]), new_state


class SileroVAD:
    """Per-stream Silero VAD state: feed 512-sample chunks, get speech probabilities.

    Args:
        model: the shared :class:`SileroModel`.
    """

    def __init__(self, model: SileroModel) -> None:
        self._model = model
        self.reset()

    def reset(self) -> None:
        """Forget the stream (LSTM state and context)."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def __call__(self, chunk: np.ndarray) -> float:
        """Speech probability of one chunk.

        Args:
            chunk: ``np.ndarray[float32]`` shape (512,), 16 kHz mono.
        Returns:
            probability in [0, 1].
        Raises:
            AudioFormatError: wrong shape.
        """
        if chunk.shape != (CHUNK,):
            raise AudioFormatError(f"Silero VAD takes {CHUNK}-sample chunks at 16 kHz, got shape {chunk.shape}")
        window = np.concatenate([self._context, chunk.astype(np.float32, copy=False)])[None, :]
        prob, self._state = self._model.run(window, self._state)
        self._context = window[0, -CONTEXT:]
        return prob


@dataclass(frozen=True)
class VADChunk:
    """The VAD's verdict on one 32 ms chunk. Times are stream time in seconds (samples / 16 kHz)."""

    index: int
    start_s: float
    end_s: float
    prob: float
    audio: np.ndarray  # float32 (512,)


@dataclass(frozen=True)
class VADEvent:
    """A speech boundary in stream time (seconds). ``start`` is reported once speech lasted ``min_speech_ms``;
    ``end`` (at the end of the last chunk above ``threshold``) once silence lasted ``min_silence_ms``."""

    kind: Literal["start", "end"]
    time_s: float


class SpeechSegmenter:
    """The hysteresis state machine, separate from the model so a stored probability track can be re-segmented
    with other thresholds (the eval's threshold sweep) without re-running Silero.

    Args:
        settings: thresholds and durations (``config/default.yaml`` → ``vad``).
    """

    def __init__(self, settings: VADSettings) -> None:
        self.settings = settings
        self.speaking = False
        self.speech_start_s = 0.0
        self.silence_start_s: float | None = None  # first chunk below neg_threshold in the current pause
        self.last_speech_end_s: float | None = None  # end of the last chunk at or above threshold
        self._candidate_start: float | None = None  # above threshold, not yet min_speech long

    @property
    def onset_pending(self) -> bool:
        """True while probabilities are above threshold but speech has not yet lasted ``min_speech_ms``."""
        return self._candidate_start is not None

    def step(self, start_s: float, end_s: float, prob: float) -> VADEvent | None:
        """Advance by one chunk spanning [start_s, end_s) with speech probability ``prob``."""
        s = self.settings
        if not self.speaking:
            if prob >= s.threshold:
                if self._candidate_start is None:
                    self._candidate_start = start_s
                if end_s - self._candidate_start >= s.min_speech_ms / 1000:
                    self.speaking = True
                    self.speech_start_s = self._candidate_start
                    self.silence_start_s = None
                    self.last_speech_end_s = end_s
                    return VADEvent("start", self._candidate_start)
            elif prob < s.neg_threshold:
                self._candidate_start = None
            return None
        # speaking: probabilities between neg_threshold and threshold keep the current state
        if prob >= s.threshold:
            self.silence_start_s = None
            self.last_speech_end_s = end_s
        elif prob < s.neg_threshold:
            if self.silence_start_s is None:
                self.silence_start_s = start_s
            if end_s - self.silence_start_s >= s.min_silence_ms / 1000:
                self.speaking = False
                self._candidate_start = None
                # Silero's probability decays for ~100 ms after the last phoneme: the end of the last confident
                # chunk is a closer estimate of the true end than the start of the silence run.
                return VADEvent("end", self.last_speech_end_s)
        return None


def segment_probs(probs: np.ndarray, settings: VADSettings) -> list[tuple[float, float]]:
    """Speech regions of a probability track (one value per 32 ms chunk), as (start_s, end_s) pairs."""
    seg = SpeechSegmenter(settings)
    regions: list[tuple[float, float]] = []
    for i, p in enumerate(probs):
        ev = seg.step(i * CHUNK_S, (i + 1) * CHUNK_S, float(p))
        if ev is not None and ev.kind == "end":
            regions.append((seg.speech_start_s, ev.time_s))
    if seg.speaking:
        regions.append((seg.speech_start_s, len(probs) * CHUNK_S))
    return regions


class StreamingVAD:
    """Streaming speech segmentation over any-size 16 kHz float32 input (model + framing + segmenter).

    Args:
        model: shared Silero ONNX session.
        settings: thresholds and durations.
    """

    def __init__(self, model: SileroModel, settings: VADSettings) -> None:
        self._vad = SileroVAD(model)
        self._framer = Framer(CHUNK, np.float32)
        self.segmenter = SpeechSegmenter(settings)
        self._index = 0

    def push(self, pcm16k: np.ndarray) -> list[tuple[VADChunk, VADEvent | None]]:
        """Feed float32 16 kHz samples; returns each completed chunk with the boundary it caused, if any."""
        out = []
        for chunk in self._framer.push(pcm16k):
            start = self._index * CHUNK_S
            prob = self._vad(chunk)
            vc = VADChunk(self._index, start, start + CHUNK_S, prob, chunk)
            self._index += 1
            out.append((vc, self.segmenter.step(vc.start_s, vc.end_s, prob)))
        return out


def probabilities(model: SileroModel, pcm16k: np.ndarray) -> np.ndarray:
    """Speech probability per 32 ms chunk of a whole 16 kHz float32 clip (the tail is zero-padded)."""
    vad, framer = SileroVAD(model), Framer(CHUNK, np.float32)
    chunks = framer.push(pcm16k)
    tail = framer.flush()
    if tail is not None:
        chunks.append(tail)
    return np.array([vad(c) for c in chunks], dtype=np.float32)
