"""Oviya's own backchannels: the policy on a virtual timeline, and the real engine on real speech with a pause."""

from __future__ import annotations

import asyncio

from oviya.brain.backchannel import BackchannelPolicy
from oviya.config import load_settings
from oviya.engine import TurnEngine
from oviya.events import AudioOut, TurnDone
from tests.test_engine import collect_turn, play


def test_policy_fires_once_per_long_pause_after_enough_speech_and_is_rate_limited(settings):
    s = settings.backchannel
    p = BackchannelPolicy(s)
    pause = s.pause_ms / 1000
    assert p.decide(10.0, 9.9, pause - 0.05, 10.0) is None  # the pause is too short yet
    assert p.decide(10.0, 9.0, pause, s.min_voiced_s - 0.5) is None  # not enough speech in the turn
    assert p.decide(10.0, 9.5, pause, s.min_voiced_s) == s.phrases[0]
    assert p.decide(10.1, 9.5, pause + 0.1, s.min_voiced_s) is None  # once per pause
    assert p.decide(10.0 + s.min_interval_s / 2, 12.0, pause, 20.0) is None  # rate limit
    assert p.decide(10.0 + s.min_interval_s, 14.0, pause, 20.0) == s.phrases[1]
    off = BackchannelPolicy(s.model_copy(update={"enabled": False}))
    assert off.decide(10.0, 9.5, pause, 20.0) is None


def test_engine_says_mm_hmm_in_a_mid_turn_pause_without_taking_the_turn(components, clip):
    # concat_01_clean: speech 1.0-5.88 s, a 0.6 s pause, speech 6.48-9.11 s, a 1.5 s pause, speech 10.61-22.15 s.
    # A 1 s silence window keeps the 0.6 s pause inside the turn; the 1.5 s pause ends it.
    settings = load_settings(turn={"mode": "vad_only", "silence_ms": 1000})
    audio, _ = clip("vad/constructed/concat_01_clean.wav")

    async def run():
        async with TurnEngine(components, settings) as engine:
            player = asyncio.create_task(play(engine, audio[: int(10.3 * 16000)]))
            events, done = await collect_turn(engine)
            await player
            return events, done

    events, done = asyncio.run(run())
    rec = done.record
    assert rec.backchannels_said == [settings.backchannel.phrases[0]]
    assert rec.end_reason == "silence" and rec.speech_end > 9.0 - 1.0  # one turn spanning the 0.6 s pause
    frames = [e for e in events if isinstance(e, AudioOut)]
    said = [f for f in frames if f.due < rec.eot]  # audio while the user's turn was still open: the backchannel
    assert said and 0.2 < sum(len(f.pcm) for f in said) / said[0].sample_rate < 2.0
    assert rec.first_audio_out > rec.eot and rec.v2v_ms > 0  # the backchannel is not the reply's first audio
    assert rec.reply_text and isinstance(events[-1], TurnDone)
