"""PCM conversions, resampling and framing.

Conventions used across Oviya: int16 PCM is ``np.ndarray[int16]``, float PCM is ``np.ndarray[float32]`` in
[-1, 1]; both are mono, shape ``(n,)``. Resampling uses soxr (libsoxr, "HQ" quality).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import soxr


class AudioFormatError(ValueError):
    """Audio that cannot be interpreted: wrong dtype, shape, sample rate or a malformed file."""


def to_float32(pcm: np.ndarray) -> np.ndarray:
    """Convert PCM to float32 in [-1, 1].

    Args:
        pcm: ``np.ndarray`` of int16 (scaled by 1/32768), float32/float64 (kept, cast) or int32 (scaled by 2**-31).
    Returns:
        ``np.ndarray[float32]``, same shape.
    Raises:
        AudioFormatError: for any other dtype.
    """
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    if pcm.dtype == np.int32:
        return (pcm.astype(np.float64) / 2**31).astype(np.float32)
    if pcm.dtype in (np.float32, np.float64):
        return pcm.astype(np.float32, copy=False)
    raise AudioFormatError(f"unsupported PCM dtype {pcm.dtype}; expected int16, int32 or float32")


def to_int16(pcm: np.ndarray) -> np.ndarray:
    """Convert PCM to int16, clipping floats to [-1, 1] first.

    Args:
        pcm: int16 (returned as is) or float ``np.ndarray`` in [-1, 1].
    Returns:
        ``np.ndarray[int16]``, same shape.
    """
    if pcm.dtype == np.int16:
        return pcm
    f = np.clip(to_float32(pcm), -1.0, 1.0)
    return np.round(f * 32767.0).astype(np.int16)


def to_mono(pcm: np.ndarray) -> np.ndarray:
    """Mix a multi-channel array down to mono.

    Accepts shape ``(n,)``, ``(1, n)``, ``(n, 1)``, ``(channels, n)`` or ``(n, channels)`` (the smaller axis is
    taken as channels, as WebRTC frames arrive as ``(1, n)`` or interleaved ``(n, 2)``). The dtype is kept.

    Raises:
        AudioFormatError: for arrays with more than 2 dimensions or no samples.
    """
    if pcm.ndim == 1:
        return pcm
    if pcm.ndim != 2 or pcm.size == 0:
        raise AudioFormatError(f"expected mono (n,) or 2-D (channels, n) audio, got shape {pcm.shape}")
    channel_axis = 0 if pcm.shape[0] <= pcm.shape[1] else 1
    if pcm.shape[channel_axis] == 1:
        return pcm.reshape(-1)
    mixed = pcm.astype(np.float32).mean(axis=channel_axis)
    return mixed.astype(pcm.dtype) if pcm.dtype == np.int16 else mixed


def checked_input(pcm: np.ndarray, sample_rate: int, max_rate: int, max_frame_s: float) -> np.ndarray:
    """Microphone audio from an untrusted client, bounded before it is converted: float32 mono in [-1, 1].

    Args:
        pcm: int16 or float32 samples, mono ``(n,)`` or ``(channels, n)`` / ``(n, channels)``.
        sample_rate: Hz, an int in 8000..``max_rate``.
        max_frame_s: the longest frame accepted (s).

    Raises:
        AudioFormatError: wrong type, dtype, shape or rate, non-finite samples, or a frame longer than
            ``max_frame_s``.
    """
    if not isinstance(pcm, np.ndarray):
        raise AudioFormatError(f"audio must be a numpy array, got {type(pcm).__name__}")
    if not isinstance(sample_rate, int) or not 8000 <= sample_rate <= max_rate:
        raise AudioFormatError(f"sample rate must be an int in 8000..{max_rate} Hz, got {sample_rate!r}")
    if max(pcm.shape, default=0) > max_frame_s * sample_rate:  # the longer axis is time (see to_mono)
        raise AudioFormatError(f"audio frame of {max(pcm.shape) / sample_rate:.2f} s exceeds {max_frame_s} s")
    x = to_float32(to_mono(pcm))
    if not np.all(np.isfinite(x)):
        raise AudioFormatError("audio contains NaN or infinite samples")
    return np.clip(x, -1.0, 1.0)


def resample(pcm: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample a whole mono clip with soxr.

    Args:
        pcm: int16 or float32 ``(n,)``.
    Returns:
        The same dtype, shape ``(round(n * to_hz / from_hz),)``.
    """
    if from_hz == to_hz:
        return pcm
    return soxr.resample(pcm, from_hz, to_hz, quality="HQ")


class StreamResampler:
    """Streaming soxr resampler for mono audio arriving in chunks (keeps filter state between chunks).

    Args:
        from_hz, to_hz: sample rates in Hz.
        dtype: ``"int16"`` or ``"float32"``: the dtype of every input and output chunk.
    """

    def __init__(self, from_hz: int, to_hz: int, dtype: str = "float32") -> None:
        self.from_hz = from_hz
        self.to_hz = to_hz
        self._stream = None if from_hz == to_hz else soxr.ResampleStream(from_hz, to_hz, 1, dtype=dtype, quality="HQ")

    def process(self, pcm: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample the next chunk; ``last=True`` flushes the filter tail."""
        if self._stream is None:
            return pcm
        return self._stream.resample_chunk(pcm, last=last)


class Framer:
    """Re-chunk a stream of mono samples into fixed-size frames (e.g. 512-sample VAD chunks, 20 ms output frames).

    Args:
        frame_size: samples per frame.
        dtype: dtype of the frames.
    """

    def __init__(self, frame_size: int, dtype: np.dtype | type = np.float32) -> None:
        if frame_size <= 0:
            raise ValueError("frame_size must be positive")
        self.frame_size = frame_size
        self._buf = np.zeros(0, dtype=dtype)

    def push(self, pcm: np.ndarray) -> list[np.ndarray]:
        """Append samples; return every complete frame, shape ``(frame_size,)``, in order."""
        self._buf = np.concatenate([self._buf, pcm.astype(self._buf.dtype, copy=False)])
        n = len(self._buf) // self.frame_size
        frames = [self._buf[i * self.frame_size : (i + 1) * self.frame_size] for i in range(n)]
        self._buf = self._buf[n * self.frame_size :]
        return frames

    def flush(self) -> np.ndarray | None:
        """Return the buffered remainder zero-padded to one frame, or None when empty."""
        if len(self._buf) == 0:
            return None
        out = np.zeros(self.frame_size, dtype=self._buf.dtype)
        out[: len(self._buf)] = self._buf
        self._buf = self._buf[:0]
        return out

    def clear(self) -> None:
        """Drop buffered samples."""
        self._buf = self._buf[:0]


def read_wav(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32, optionally resampled.

    Args:
        path: any format libsndfile reads (WAV, FLAC, OGG).
        sample_rate: target rate in Hz, or None to keep the file's rate.
    Returns:
        ``(np.ndarray[float32] shape (n,), sample_rate_hz)``.
    Raises:
        AudioFormatError: the file is missing or unreadable.
    """
    try:
        data, sr = soundfile.read(str(path), dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioFormatError(f"cannot read audio file {path}: {e}") from e
    data = to_mono(data.T if data.ndim == 2 else data)
    if sample_rate is not None and sample_rate != sr:
        data, sr = resample(data, sr, sample_rate), sample_rate
    return data.astype(np.float32, copy=False), sr


def rms_dbfs(pcm: np.ndarray) -> float:
    """Root-mean-square level in dBFS of int16 or float PCM (-120 for silence)."""
    f = to_float32(pcm)
    if f.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(f, dtype=np.float64))))
    return 20.0 * np.log10(max(rms, 1e-6))
