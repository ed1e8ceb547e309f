import numpy as np
import pytest

from oviya.audio import (
    AudioFormatError,
    Framer,
    StreamResampler,
    checked_input,
    resample,
    rms_dbfs,
    to_float32,
    to_int16,
    to_mono,
)


def test_int16_float32_round_trip():
    x = np.array([-32768, -1000, 0, 1000, 32767], dtype=np.int16)
    f = to_float32(x)
    assert f.dtype == np.float32 and f.min() >= -1.0 and f.max() < 1.0
    assert np.max(np.abs(to_int16(f).astype(int) - x.astype(int))) <= 1


def test_to_int16_clips_out_of_range_floats():
    assert to_int16(np.array([2.0, -2.0], dtype=np.float32)).tolist() == [32767, -32767]


def test_unsupported_dtype_is_a_clear_error():
    with pytest.raises(AudioFormatError, match="dtype"):
        to_float32(np.zeros(4, dtype=np.uint8))


def test_to_mono_accepts_webrtc_layouts():
    assert to_mono(np.zeros((1, 960), np.int16)).shape == (960,)
    stereo = np.stack([np.ones(480), -np.ones(480)], axis=1).astype(np.float32)  # interleaved (n, 2)
    assert np.allclose(to_mono(stereo), 0.0)
    with pytest.raises(AudioFormatError):
        to_mono(np.zeros((2, 2, 2)))


def test_stream_resampler_matches_length_and_keeps_a_tone():
    sr_in, sr_out = 48000, 16000
    t = np.arange(sr_in) / sr_in
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    rs = StreamResampler(sr_in, sr_out)
    out = np.concatenate([rs.process(tone[i : i + 960]) for i in range(0, len(tone), 960)] + [rs.process(tone[:0], last=True)])
    assert abs(len(out) - sr_out) <= 2
    spectrum = np.abs(np.fft.rfft(out[:sr_out]))
    assert abs(np.argmax(spectrum) * sr_out / len(out[:sr_out]) - 440) < 2
    assert len(resample(tone, sr_in, sr_out)) == sr_out


def test_framer_rechunks_and_flushes():
    fr = Framer(512)
    frames = fr.push(np.ones(1000, np.float32))
    assert [len(f) for f in frames] == [512]
    tail = fr.flush()
    assert tail.shape == (512,) and tail[:488].all() and not tail[488:].any()
    assert fr.flush() is None


def test_rms_dbfs_of_full_scale_sine_is_minus_3_db():
    x = np.sin(np.linspace(0, 200 * np.pi, 16000)).astype(np.float32)
    assert abs(rms_dbfs(x) + 3.01) < 0.1
    assert rms_dbfs(np.zeros(10, np.int16)) == -120.0


def test_microphone_input_is_bounded_and_checked_before_it_is_converted():
    stereo = np.full((2, 480), 16384, np.int16)  # a 10 ms WebRTC frame at 48 kHz
    x = checked_input(stereo, 48000, 48000, 1.0)
    assert x.dtype == np.float32 and x.shape == (480,) and np.allclose(x, 0.5)
    assert checked_input(np.array([2.0, -3.0], np.float32), 16000, 48000, 1.0).tolist() == [1.0, -1.0]
    with pytest.raises(AudioFormatError, match="exceeds"):
        checked_input(np.zeros((2, 48001), np.int16), 48000, 48000, 1.0)
    with pytest.raises(AudioFormatError, match="sample rate"):
        checked_input(np.zeros(160, np.int16), 96000, 48000, 1.0)
    with pytest.raises(AudioFormatError, match="NaN"):
        checked_input(np.array([np.nan], np.float32), 16000, 48000, 1.0)
    with pytest.raises(AudioFormatError, match="numpy"):
        checked_input([0, 1], 16000, 48000, 1.0)  # type: ignore[arg-type]
