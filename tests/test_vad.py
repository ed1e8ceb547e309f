"""Silero VAD, streamed as a live call would feed it (20 ms frames), on real speech."""

import numpy as np

from oviya.vad import StreamingVAD, probabilities, segment_probs

FRAME = 320  # 20 ms at 16 kHz


def stream_regions(components, settings, audio: np.ndarray) -> list[tuple[float, float]]:
    vad = StreamingVAD(components.vad, settings.vad)
    regions, start = [], None
    for i in range(0, len(audio), FRAME):
        for _, ev in vad.push(audio[i : i + FRAME]):
            if ev is not None and ev.kind == "start":
                start = ev.time_s
            elif ev is not None:
                regions.append((start, ev.time_s))
    if vad.segmenter.speaking:
        regions.append((start, len(audio) / 16000))
    return regions


def test_vad_marks_speech_regions_within_100_ms(components, settings, clip):
    audio, row = clip("vad/ten-vad/testset-audio-12.wav")  # manual labels, three sentences
    got = stream_regions(components, settings, audio)
    truth = [(r["start"], r["end"]) for r in row["speech_regions"]]
    assert len(got) == len(truth), (got, truth)
    for (g0, g1), (t0, t1) in zip(got, truth):
        assert abs(g0 - t0) <= 0.100 and abs(g1 - t1) <= 0.100, (got, truth)


def test_vad_finds_no_speech_in_the_negative_clip(components, settings, clip):
    audio, row = clip("vad/negative/picovoice-leopard-empty.wav")
    assert row["speech_regions"] == []
    assert stream_regions(components, settings, audio) == []


def test_offline_segmentation_agrees_with_streaming(components, settings, clip):
    audio, _ = clip("vad/ten-vad/testset-audio-03.wav")
    offline = segment_probs(probabilities(components.vad, audio), settings.vad)
    streamed = stream_regions(components, settings, audio)
    assert len(offline) == len(streamed)
    # identical boundaries, except that an open region ends at the clip end vs. the zero-padded last chunk's end
    assert np.allclose(np.array(offline), np.array(streamed), atol=0.032)
