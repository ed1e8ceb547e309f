"""espeak-ng formant synthesis (GPL-3.0) through ``espeakng-loader`` (the shared library and its data in a wheel):
the last-resort TTS — robotic, but < 10 ms to first audio and it never needs a model file.

Called through ctypes on espeak-ng's C API (``speak_lib.h``: espeak_Initialize, espeak_SetParameter,
espeak_SetVoiceByName, espeak_Synth with AUDIO_OUTPUT_SYNCHRONOUS and a synth callback). The library keeps one global
state, so every call holds a process-wide lock.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import AsyncIterator, Iterator

import numpy as np

from oviya.aio import iterate_in_thread
from oviya.tts import TTSError, clause_text
from oviya.tts.styles import EmotionMap

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_RATE, ESPEAK_PITCH, ESPEAK_RANGE = 1, 3, 4  # espeak_PARAMETER
EE_OK = 0

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_lock = threading.Lock()
_lib: tuple[ctypes.CDLL, int] | None = None


def _library() -> tuple[ctypes.CDLL, int]:
    """The initialised library and its sample rate (Hz), loaded once per process."""
    global _lib
    if _lib is None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise TTSError(f"espeak-ng failed to initialise (espeak_Initialize returned {rate})")
        _lib = (lib, rate)
    return _lib


class EspeakTTS:
    """:class:`oviya.tts.Synthesizer` on espeak-ng.

    Args:
        styles: the emotion map (voice name, and rate / pitch / range per emotion).
    Raises:
        TTSError: the library does not initialise.
    """

    def __init__(self, styles: EmotionMap) -> None:
        self.styles = styles
        with _lock:
            _, self.sample_rate = _library()
        self.name = "espeak-ng"

    def _synth(self, text: str, emotion: str | None) -> Iterator[np.ndarray]:
        style = self.styles.espeak(emotion)
        pieces: list[np.ndarray] = []

        def collect(wav, n, _events) -> int:
            if n > 0:
                pieces.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        callback = _CALLBACK(collect)  # kept alive until synthesis returns
        lib, _ = _library()
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(self.styles.current.espeak.voice.encode()) != EE_OK:
            raise TTSError(f"espeak-ng has no voice {self.styles.current.espeak.voice!r}")
        for param, value in ((ESPEAK_RATE, style.rate), (ESPEAK_PITCH, style.pitch), (ESPEAK_RANGE, style.range)):
            lib.espeak_SetParameter(param, value, 0)
        data = text.encode()
        if lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None) != EE_OK:
            raise TTSError(f"espeak-ng failed on {text[:40]!r}")
        if pieces:
            yield np.concatenate(pieces).astype(np.int16)

    async def synthesize(self, text: str, emotion: str | None = None) -> AsyncIterator[np.ndarray]:
        if not (text := clause_text(text)):
            return
        async for audio in iterate_in_thread(lambda: self._synth(text, emotion), _lock):
            yield audio
