"""The turn engine's parts on their own: the overlap verdict, the reply's life cycle, the named tasks, the event
observers and the microphone feed."""

from __future__ import annotations

import asyncio
from itertools import count, takewhile

import numpy as np
import pytest
import yaml

from oviya.config import load_settings
from oviya.events import AudioFlush, AudioOut, ErrorEvent, StatusEvent, TranscriptEvent, TurnDone, TurnRecord
from oviya.observer import EngineObserver, notify
from oviya.overlap import OverlapJudge
from oviya.realtime import clip_then_silence
from oviya.reply import Reply
from oviya.server.chatlog import ChatLog
from oviya.tasks import NamedTasks
from oviya.tuning import as_yaml, tuned

REPLY = "I think the museum opens at nine on Saturdays, and the cafe upstairs is lovely."


@pytest.fixture(scope="module")
def judge() -> OverlapJudge:
    return OverlapJudge(load_settings().barge_in)


@pytest.mark.parametrize(("heard", "verdict"), [
    ("", "noise"),
    ("...", "noise"),
    ("Yeah.", "backchannel"),
    ("Uh huh.", "backchannel"),
    ("Okay, right.", "backchannel"),
    ("Got it", "backchannel"),
    ("Uh huh, okay.", "backchannel"),  # several backchannels in a row, multi-word ones among them
    ("Oh wow, I see.", "backchannel"),
    ("Uh-huh.", "backchannel"),
    ("Uh, I see what you mean, but no.", "barge_in"),  # "uh" alone is no backchannel entry
    ("the museum opens at nine", "echo"),  # her own words back through the microphone
    ("Wait, stop.", "barge_in"),
    ("Yeah, but what about Sunday?", "barge_in"),  # a backchannel word opening a real turn
    ("nine o'clock is too early for me", "barge_in"),  # one of her words is not an echo
])
def test_the_overlap_verdict_follows_the_words_heard(judge, heard, verdict):
    assert judge.judge(heard, REPLY) == verdict


def test_without_a_reply_nothing_is_her_echo(judge):
    assert judge.judge("the museum opens at nine", "") == "barge_in"


def test_short_talk_over_is_taken_for_residual_echo_only_while_echo_is_present(judge):
    assert judge.residual_echo(0.2, echo_present=True)
    assert not judge.residual_echo(0.2, echo_present=False)
    assert not judge.residual_echo(0.9, echo_present=True)


def test_a_reply_moves_only_along_its_life_cycle():
    reply = Reply(TurnRecord(1, "voice"))
    assert reply.state == "thinking" and not reply.sounding
    reply.to("speaking")
    reply.to("paused")
    assert reply.sounding
    reply.to("speaking")
    reply.to("interrupted")
    with pytest.raises(RuntimeError, match="interrupted -> speaking"):
        reply.to("speaking")
    with pytest.raises(RuntimeError, match="thinking -> paused"):
        Reply(TurnRecord(2, "voice")).to("paused")


def test_a_reply_cut_short_keeps_only_the_words_played():
    reply = Reply(TurnRecord(1, "voice"), clauses=["One two three four.", "Five six seven eight."],
                  samples={0: 400, 1: 400})
    assert reply.spoken_text({0: 400, 1: 200}) == "One two three four. Five six"
    assert reply.spoken_text({0: 0}) == ""


def test_a_new_task_replaces_the_old_of_its_name_and_aclose_ends_all():
    async def main() -> None:
        tasks = NamedTasks()
        order: list[str] = []

        async def wait(tag: str) -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                order.append(tag)

        old = tasks.start("reply", wait("old"))
        await asyncio.sleep(0)
        new = tasks.start("reply", wait("new"))
        await asyncio.sleep(0)
        assert old.cancelled() and tasks.get("reply") is new
        spec = tasks.start("spec_stt", wait("spec"))
        assert tasks.adopt("spec_stt") is spec and tasks.get("spec_stt") is None
        await asyncio.sleep(0)
        tasks.start("spec_stt", wait("spec2"))
        await asyncio.sleep(0)
        assert not spec.done()  # adopted: a newer task of its old name leaves it alone
        tasks.start("player", wait("player"))
        await tasks.aclose(last=("player",))
        assert tasks.pending() == [] and order[0] == "old" and order[-1] == "player"
        assert set(order) == {"old", "new", "spec", "spec2", "player"}

    asyncio.run(main())


def test_notify_hands_each_event_kind_to_its_hook_and_refuses_anything_else():
    class Seen(EngineObserver):
        def __init__(self) -> None:
            self.hooks: list[str] = []

        def __getattribute__(self, name: str):
            if name.startswith("on_"):
                object.__getattribute__(self, "hooks").append(name)
            return object.__getattribute__(self, name)

    a, b = Seen(), Seen()
    rec = TurnRecord(1, "text")
    events = [AudioOut(np.zeros(480, np.int16), 24000), AudioFlush(), TranscriptEvent("user", "hi", 1),
              StatusEvent("thinking"), ErrorEvent("llm_error", "down"), TurnDone(rec)]
    for ev in events:
        notify(ev, a, b)
    hooks = ["on_audio", "on_flush", "on_transcript", "on_status", "on_error", "on_turn_done"]
    assert a.hooks == hooks and b.hooks == hooks
    with pytest.raises(TypeError, match="not an engine event"):
        notify("hello", a)


def test_a_clip_is_fed_in_whole_frames_then_silence_then_ends():
    audio = np.arange(1000, dtype=np.float32)  # 62.5 ms at 16 kHz: three whole 20 ms frames and a part
    frame = clip_then_silence(audio, tail_s=0.04)
    frames = list(takewhile(lambda f: f is not None, map(frame, count())))
    assert [len(f) for f in frames] == [320, 320, 320, 40, 320, 320]
    assert np.array_equal(np.concatenate(frames[:4]), audio) and not frames[-1].any()


def test_the_chat_log_replaces_a_partial_line_and_marks_a_reply_cut_short():
    chat = ChatLog([{"role": "assistant", "content": "Hello!"}])
    chat.on_transcript(TranscriptEvent("user", "I went to", 2, final=False))
    chat.on_transcript(TranscriptEvent("user", "I went to the market", 2))
    chat.on_transcript(TranscriptEvent("assistant", "Oh, which", 2, interrupted=True))
    assert chat.messages == [{"role": "assistant", "content": "Hello!"},
                             {"role": "user", "content": "I went to the market"},
                             {"role": "assistant", "content": "Oh, which …"}]


def test_live_tuning_validates_each_section_like_the_yaml_and_writes_the_snippet_back():
    base = load_settings()
    s = tuned(base, {"vad.threshold": 0.7, "turn.smart_turn.min_silence_ms": 300, "backchannel.enabled": False})
    assert (s.vad.threshold, s.turn.smart_turn.min_silence_ms, s.backchannel.enabled) == (0.7, 300, False)
    assert s.vad.min_speech_ms == base.vad.min_speech_ms and base.vad.threshold != 0.7  # the rest, and the base, kept
    with pytest.raises(ValueError, match="neg_threshold"):  # the section's own cross-field rule
        tuned(base, {"vad.threshold": base.vad.neg_threshold / 2})
    with pytest.raises(ValueError, match="not tunable during a call: stt.model"):
        tuned(base, {"stt.model": "base"})
    with pytest.raises(ValueError, match="mode"):
        tuned(base, {"turn.mode": "psychic"})
    snippet = as_yaml({"vad.threshold": 0.7, "turn.mode": "vad_only", "turn.silence_ms": 900})
    assert yaml.safe_load(snippet) == {"vad": {"threshold": 0.7}, "turn": {"mode": "vad_only", "silence_ms": 900}}
    assert load_settings(**yaml.safe_load(snippet)).turn.silence_ms == 900  # it loads as config
