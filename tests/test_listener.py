"""Turn-taking decisions of the Listener on real speech, driven by stream time only (fast and deterministic: the
same decisions the live engine takes, without waiting in real time)."""

import numpy as np
import pytest

from eval.data import speech_span
from oviya.listener import (
    CandidateDropped,
    EndOfTurn,
    Listener,
    Paused,
    Resumed,
    SpeechCandidate,
    TurnStarted,
)

SR = 16000


def with_mode(settings, mode, **turn):
    t = settings.turn.model_copy(update={"mode": mode, **turn})
    return settings.model_copy(update={"turn": t})


def feed(listener, audio, chunk=512):
    events = []
    for i in range(0, len(audio), chunk):
        for vc, evs in listener.push(audio[i : i + chunk]):
            events += [(vc.end_s, e) for e in evs]
    return events


def trimmed(clip, file):
    audio, _ = clip(file)
    start, end = speech_span(audio)
    return audio[int(start * SR) : int(end * SR)]


def silence(seconds):
    return np.zeros(int(seconds * SR), np.float32)


def test_smart_turn_ends_a_complete_sentence_right_after_its_pause(components, settings, clip):
    speech = trimmed(clip, "stt/picovoice-cheetah/test_en.wav")
    s = with_mode(settings, "smart_turn")
    events = feed(Listener(components.vad, s, components.smart_turn.probability), np.concatenate([silence(0.5), speech, silence(2)]))
    ends = [e for _, e in events if isinstance(e, EndOfTurn)]
    assert len(ends) == 1 and ends[0].reason == "smart_turn" and ends[0].probability >= 0.5
    delay = ends[0].decided_s - ends[0].end_s
    assert s.turn.smart_turn.min_silence_ms / 1000 <= delay < s.turn.smart_turn.min_silence_ms / 1000 + 0.033
    assert abs(ends[0].end_s - (0.5 + len(speech) / SR)) < 0.2  # the VAD's speech end is near the true end
    assert [type(e) for _, e in events][:2] == [SpeechCandidate, TurnStarted]


def test_smart_turn_keeps_listening_when_the_sentence_is_cut_mid_way(components, settings, clip):
    speech = trimmed(clip, "stt/lhotse/2412-153948-0000.wav")
    half = speech[: int(0.3 * len(speech))]  # "If the reader will excuse me, I will..." stops mid-sentence
    s = with_mode(settings, "smart_turn")
    events = feed(Listener(components.vad, s, components.smart_turn.probability), np.concatenate([half, silence(2)]))
    end = next(e for _, e in events if isinstance(e, EndOfTurn))
    assert end.reason == "silence" and end.probability < 0.5
    assert end.decided_s - end.end_s >= s.turn.smart_turn.max_silence_ms / 1000


def test_vad_only_waits_for_the_silence_window(components, settings, clip):
    speech = trimmed(clip, "stt/picovoice-cheetah/test_en.wav")
    s = with_mode(settings, "vad_only")
    events = feed(Listener(components.vad, s), np.concatenate([speech, silence(2)]))
    end = next(e for _, e in events if isinstance(e, EndOfTurn))
    assert end.reason == "silence"
    assert s.turn.silence_ms / 1000 <= end.decided_s - end.end_s < s.turn.silence_ms / 1000 + 0.033


def test_a_pause_starts_speculation_and_more_speech_makes_it_stale(components, settings, clip):
    first = trimmed(clip, "stt/pocketsphinx/goforward.wav")
    second = trimmed(clip, "stt/speechbrain/example1.wav")
    s = with_mode(settings, "vad_only", silence_ms=1500)  # a long window, so the pause does not end the turn
    events = feed(Listener(components.vad, s), np.concatenate([first, silence(0.3), second, silence(2)]))
    kinds = [type(e) for _, e in events]
    paused = next(e for _, e in events if isinstance(e, Paused))
    assert kinds.index(Paused) < kinds.index(Resumed) < kinds.index(EndOfTurn)
    assert len(paused.audio) / SR == pytest.approx(len(first) / SR, abs=0.4)
    end = next(e for _, e in events if isinstance(e, EndOfTurn))
    assert len(end.audio) / SR > (len(first) + len(second)) / SR  # one turn holds both parts


def test_a_short_burst_is_only_a_candidate(components, settings, clip):
    speech = trimmed(clip, "stt/picovoice-cheetah/test_en.wav")
    burst = speech[int(0.5 * SR) : int(0.7 * SR)]  # 200 ms of voice: shorter than vad.min_speech_ms
    events = feed(Listener(components.vad, settings, components.smart_turn.probability),
                  np.concatenate([silence(0.5), burst, silence(1)]))
    assert [type(e) for _, e in events] == [SpeechCandidate, CandidateDropped]


def test_an_endless_utterance_is_cut_at_the_maximum_length(components, settings, clip):
    speech = trimmed(clip, "stt/lhotse/2412-153948-0000.wav")
    s = settings.model_copy(update={"turn": settings.turn.model_copy(update={"max_utterance_s": 3.0})})
    events = feed(Listener(components.vad, s, components.smart_turn.probability), speech)
    first_end = next(e for _, e in events if isinstance(e, EndOfTurn))
    assert first_end.reason == "max_length" and 3.0 <= first_end.decided_s - first_end.start_s < 3.05
