"""Barge-in on a live reply with the real models in real time: talked over, Oviya stops at once; a backchannel,
noise or her own echo does not stop her. Trials come from the eval harness (eval/tasks/barge_in.py)."""

import asyncio

import numpy as np
import pytest

from eval.context import Context
from eval.data import speech_span
from eval.tasks.barge_in import trial
from oviya.echo import EchoCanceller
from oviya.events import TurnRecord
from oviya.metrics import Metrics


@pytest.fixture(scope="module")
def ctx(settings, components, tmp_path_factory):
    return Context(data=settings.eval.data_dir, out=tmp_path_factory.mktemp("bi"), clips=[], settings=settings,
                   _components=components)


def test_talking_over_oviya_stops_her_within_a_few_chunks(ctx, clip):
    audio, _ = clip("stt/picovoice-cheetah/test_en.wav")
    r = asyncio.run(trial(ctx, audio, speech_span(audio)[0], echo=False))
    assert r["valid"] and r["interrupted"]
    assert r["stop_ms"] is not None and r["stop_ms"] < 300, r


@pytest.mark.parametrize("file", ["backchannel/speech-commands/yes_439c84f4_nohash_1.wav",
                                  "backchannel/speech-commands/right_97f4c236_nohash_2.wav"])
def test_a_backchannel_does_not_interrupt(ctx, clip, file):
    audio, _ = clip(file)
    r = asyncio.run(trial(ctx, audio, None, echo=False))
    assert r["valid"] and not r["interrupted"], r


def test_her_own_echo_does_not_interrupt(ctx):
    r = asyncio.run(trial(ctx, np.zeros(3 * 16000, np.float32), None, echo=True))
    assert r["valid"] and not r["interrupted"], r


def test_echo_canceller_removes_echo_once_seen_and_passes_speech_untouched_before(settings, clip):
    """WebRTC AEC3 on a simulated loudspeaker path: 250 ms late, -6 dB."""
    speech, _ = clip("stt/lhotse/2412-153948-0000.wav")  # stands in for Oviya's playback
    out_rate = settings.audio.output_sample_rate
    from oviya.audio import resample, to_int16

    playback = to_int16(resample(speech[: 6 * 16000], 16000, out_rate))
    aec = EchoCanceller(out_rate)
    frame = out_rate // 50
    delay = int(0.25 * 16000)
    echo = np.zeros(6 * 16000 + delay, np.float32)
    echo[delay:] = 0.5 * speech[: 6 * 16000]
    outs, t = [], 0.0
    for k in range(len(playback) // frame):
        aec.on_output(playback[k * frame : (k + 1) * frame], t)
        mic = echo[k * 320 : (k + 1) * 320]
        t += 0.02
        outs.append(aec.process(mic, t))
    out = np.concatenate(outs)
    assert aec.echo_present
    tail = slice(4 * 16000, 6 * 16000)
    mic_db = 20 * np.log10(np.sqrt(np.mean(echo[tail] ** 2)))
    out_db = 20 * np.log10(np.sqrt(np.mean(out[tail] ** 2)) + 1e-9)
    assert out_db < mic_db - 20, (mic_db, out_db)
    fresh = EchoCanceller(out_rate)  # no playback yet: the microphone passes unchanged
    x = speech[:3200]
    assert np.allclose(np.concatenate([fresh.process(x, 0.1), fresh.process(np.zeros(160, np.float32), 0.11)])[:3200],
                       x, atol=1 / 32768)


def test_metrics_export_stage_histograms_and_outcomes():
    m = Metrics()
    m.observe(TurnRecord(1, "voice", outcome="answered", speech_end=0.0, eot=0.2, stt_start=0.2, stt_end=0.35,
                         first_audio_out=0.9, errors=["llm: down"]))
    text = m.export().decode()
    assert 'oviya_stage_latency_ms_bucket{le="1000.0",stage="v2v"} 1.0' in text
    assert 'oviya_turns_total{outcome="answered",source="voice"} 1.0' in text
    assert 'oviya_stage_errors_total{stage="llm"} 1.0' in text
