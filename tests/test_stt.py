"""Whisper through faster-whisper on real speech."""

import jiwer
import numpy as np
import pytest

from oviya.audio import AudioFormatError
from oviya.stt.whisper import WhisperTranscriber

NORMALISE = jiwer.Compose([
    jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
    jiwer.ReduceToListOfListOfWords(),
])


def wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(reference, hypothesis, reference_transform=NORMALISE, hypothesis_transform=NORMALISE)


@pytest.mark.parametrize("window_s", [10.0, None], ids=["short-window", "full-30s-window"])
def test_jfk_clip_wer_at_most_15_percent(components, clip, window_s):
    audio, row = clip("stt/whisper.cpp/jfk.wav")
    stt = components.stt.members[0]  # the embedded Whisper of the chain
    default, stt.settings = stt.settings, stt.settings.model_copy(update={"window_s": window_s})
    try:
        result = stt.transcribe(audio)
    finally:
        stt.settings = default
    assert wer(row["transcript"], result.text) <= 0.15, result.text
    assert result.language == "en" and result.audio_s == pytest.approx(11.0, abs=0.01)


def test_embedded_whisper_base_is_assembled_and_verified(settings, clip, tmp_path):
    stt = WhisperTranscriber(settings.stt.model_copy(update={"model": "base", "language": None}), tmp_path)
    assert (tmp_path / "whisper-base" / "model.bin").stat().st_size == 2 * 72608766
    audio, row = clip("stt/picovoice-leopard/test.wav")
    result = stt.transcribe(audio)
    assert result.language == "en"
    assert wer(row["transcript"], result.text) <= 0.25, result.text


def test_bad_audio_is_rejected(components):
    with pytest.raises(AudioFormatError):
        components.stt.transcribe(np.zeros(16000, dtype=np.int16))
