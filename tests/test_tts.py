"""TTS backends, emotion styles and the fallback chain, with the real Piper voice and the real espeak-ng library."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator

import librosa
import numpy as np
import pytest

from oviya.config import CONFIG_DIR
from oviya.tts import TTSError
from oviya.tts.espeak import EspeakTTS
from oviya.tts.fallback import FallbackTTS
from oviya.tts.piper import PiperTTS, level_dbfs
from oviya.tts.styles import EmotionMap

TEXT = "I'm really glad you told me about your day."


async def speak(synth, text: str = TEXT, emotion: str | None = None) -> np.ndarray:
    return np.concatenate([c async for c in synth.synthesize(text, emotion)]).astype(np.float32) / 32768


def median_f0(audio: np.ndarray, sample_rate: int) -> float:
    f0, voiced, _ = librosa.pyin(audio, fmin=60, fmax=400, sr=sample_rate, frame_length=2048)
    return float(np.nanmedian(f0[voiced]))


@pytest.fixture(scope="module")
def styles() -> EmotionMap:
    return EmotionMap(CONFIG_DIR / "emotion_map.yaml")


@pytest.fixture(scope="module")
def piper(settings, styles) -> PiperTTS:
    return PiperTTS(settings.tts.piper, styles)


def test_piper_sad_is_slower_lower_and_quieter_than_excited(piper):
    sad, excited = asyncio.run(speak(piper, emotion="sad")), asyncio.run(speak(piper, emotion="excited"))
    sr = piper.sample_rate
    assert len(sad) > 1.2 * len(excited)
    assert median_f0(sad, sr) < median_f0(excited, sr) * 2 ** (-3 / 12)  # at least 3 semitones apart
    assert level_dbfs(sad, sr // 50) < level_dbfs(excited, sr // 50) - 3


def test_piper_clauses_of_any_length_come_out_equally_loud(piper):
    short, long = asyncio.run(speak(piper, "Oh, I see.", "neutral")), asyncio.run(speak(piper, TEXT * 2, "neutral"))
    assert abs(level_dbfs(short, piper.sample_rate // 50) - level_dbfs(long, piper.sample_rate // 50)) < 1.0
    assert np.abs(short).max() < 1.0 and np.abs(long).max() < 1.0


def test_espeak_fallback_speaks_every_emotion(styles):
    tts = EspeakTTS(styles)
    sad, excited = asyncio.run(speak(tts, emotion="sad")), asyncio.run(speak(tts, emotion="excited"))
    assert len(sad) > len(excited) > 0.5 * tts.sample_rate and np.abs(excited).max() > 0.1


def test_emotion_map_reloads_on_edit_and_keeps_the_last_good_map(tmp_path):
    path = tmp_path / "emotion_map.yaml"
    shutil.copy(CONFIG_DIR / "emotion_map.yaml", path)
    live = EmotionMap(path)
    path.write_text(path.read_text().replace("sad:        {length_scale: 1.22", "sad:        {length_scale: 1.5"))
    os.utime(path, ns=(1, 1))  # a new mtime even within the file system's timestamp resolution
    assert live.refresh().piper.styles["sad"].length_scale == 1.5
    path.write_text("piper: {broken")
    os.utime(path, ns=(2, 2))
    assert live.refresh().piper.styles["sad"].length_scale == 1.5  # the broken edit is ignored


def test_a_failing_backend_hands_the_rest_of_the_turn_to_the_next(settings, styles):
    broken = PiperTTS(settings.tts.piper, styles)
    broken._voice.config.phoneme_id_map = {"_": [0]}  # fault injection: a real voice whose phoneme table broke
    with pytest.raises(TTSError):
        asyncio.run(speak(broken))
    chain = FallbackTTS([broken, EspeakTTS(styles)], first_audio_timeout_s=1.0, styles=styles)
    turn = chain.turn()
    audio = asyncio.run(speak(turn))
    assert len(audio) > 0.5 * chain.sample_rate and turn.last_used == "espeak-ng"
    with pytest.raises(TTSError, match="every TTS backend failed"):
        asyncio.run(speak(FallbackTTS([broken], 1.0, styles)))


class DelayedFirstAudio:
    """Fault injection around a real synthesizer: its first chunk arrives ``delay_s`` late (a stalled backend)."""

    def __init__(self, inner, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s
        self.sample_rate, self.name = inner.sample_rate, f"delayed {inner.name}"

    async def synthesize(self, text: str, emotion: str | None = None) -> AsyncIterator[np.ndarray]:
        await asyncio.sleep(self.delay_s)
        async for chunk in self.inner.synthesize(text, emotion):
            yield chunk


def test_a_stalled_backend_is_replaced_after_the_timeout_for_the_rest_of_the_turn(piper, styles):
    chain = FallbackTTS([DelayedFirstAudio(piper, 5.0), EspeakTTS(styles)], first_audio_timeout_s=0.5, styles=styles)
    turn = chain.turn()

    async def clause() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        t0, n = loop.time(), 0
        async for chunk in turn.synthesize("Hello there.", "calm"):
            n += len(chunk)
        return loop.time() - t0, n

    waited, samples = asyncio.run(clause())
    assert 0.5 <= waited < 1.5 and samples > 0.3 * chain.sample_rate and turn.last_used == "espeak-ng"
    waited, _ = asyncio.run(clause())
    assert waited < 0.4  # the second clause goes straight to espeak-ng
    assert chain.turn()._start == 0  # the next reply tries Piper first again
