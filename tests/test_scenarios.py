"""The turn engine's logic, pinned by scripted conversations on fake stages and virtual time (tests/fakes.py).

The event loop's clock is faked with ``looptime``: sleeps, timers and timeouts advance virtual time instantly, so a
conversation of many seconds runs in a fraction of one, and every timing below is exact to the script (within a
VAD chunk of 32 ms or a player frame of 20 ms). Logic only: no reported figure comes from these fakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import looptime
import pytest
from fakes import FakeLLM, FakeStages, FakeTTS, fake_components

from oviya.brain.memory import UserMemory
from oviya.clock import FastForwardClock, LoopClock
from oviya.config import Settings, load_settings
from oviya.engine import TurnEngine
from oviya.events import AudioFlush, AudioOut, ErrorEvent, StatusEvent, TranscriptEvent, TurnDone
from oviya.observer import EngineObserver
from oviya.realtime import clip_then_silence, play
from oviya.server.chatlog import ChatLog

FRAME_S = 0.02
REPLY = "Oh, that sounds lovely. Tell me more about it, I would like to hear every little detail of your day."


def scenario_settings(**overrides) -> Settings:
    """Default settings, without the echo canceller (fake audio has no room to echo in), with Smart Turn asked after
    200 ms of pause (the scripts' pauses and timings were written for it; the default waits 400 ms)."""
    turn = {"smart_turn": {"min_silence_ms": 200}, **overrides.pop("turn", {})}
    return load_settings(**{"barge_in": {"echo_guard": "off"}, "turn": turn, **overrides})


class Conversation:
    """One engine on fakes; ``events`` are ``(virtual seconds since start, event)``."""

    def __init__(self, settings: Settings, stages: FakeStages) -> None:
        self.stages = stages
        self.engine = TurnEngine(stages.components, settings, clock=LoopClock())
        self.events: list[tuple[float, object]] = []

    async def __aenter__(self) -> Conversation:
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        await self.engine.start()
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.aclose()
        await asyncio.sleep(0)
        self._reader.cancel()

    def now(self) -> float:
        return round(self.loop.time() - self.t0, 3)

    async def _read(self) -> None:
        while True:
            event = await self.engine.next_event(None)
            self.events.append((self.now(), event))

    async def say(self, *parts: tuple[str, float] | float) -> None:
        """Speak the script in 20 ms frames at the microphone's real-time pace (virtual time)."""
        await play(self.engine, clip_then_silence(self.stages.script.audio(list(parts)), 0.0))

    async def until(self, predicate: Callable[[object], bool], timeout: float = 30.0) -> float:
        """Wait (virtual time) for an event matching ``predicate``; returns when it came."""
        for _ in range(int(timeout / FRAME_S)):
            for t, e in self.events:
                if predicate(e):
                    return t
            await asyncio.sleep(FRAME_S)
        raise AssertionError(f"no such event within {timeout} s: {self.kinds()}")

    async def speaking(self) -> float:
        return await self.until(lambda e: isinstance(e, StatusEvent) and e.state == "speaking")

    async def turns(self, n: int, timeout: float = 30.0) -> list:
        for _ in range(int(timeout / FRAME_S)):
            if len(self.records()) >= n:
                return self.records()
            await asyncio.sleep(FRAME_S)
        raise AssertionError(f"{len(self.records())} of {n} turns: {self.kinds()}")

    def records(self) -> list:
        return [e.record for _, e in self.events if isinstance(e, TurnDone)]

    def of(self, kind: type) -> list:
        return [e for _, e in self.events if isinstance(e, kind)]

    def kinds(self) -> list[str]:
        """The event sequence without audio frames: status names, transcript roles, errors, turn outcomes."""
        out = []
        for _, e in self.events:
            if isinstance(e, StatusEvent):
                out.append(e.state)
            elif isinstance(e, TranscriptEvent) and e.final:
                out.append(f"{e.role}:final")
            elif isinstance(e, ErrorEvent):
                out.append(f"error:{e.code}")
            elif isinstance(e, TurnDone):
                out.append(f"turn:{e.record.outcome}")
            elif isinstance(e, AudioFlush):
                out.append("flush")
        return [k for i, k in enumerate(out) if i == 0 or k != out[i - 1]]


def run(settings: Settings, stages: FakeStages, body: Callable[[Conversation], Awaitable[None]]) -> Conversation:
    """Run ``body`` on a conversation, on an event loop whose time is virtual."""
    loop = asyncio.new_event_loop()
    looptime.patch_event_loop(loop)

    async def main() -> Conversation:
        async with Conversation(settings, stages) as conv:
            await body(conv)
        return conv

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000)


@pytest.fixture
def settings() -> Settings:
    return scenario_settings()


def test_plain_turn_is_answered_with_the_timing_the_stages_took(settings):
    stages = fake_components(settings, [FakeLLM(reply=REPLY, first_token_s=0.2)], [FakeTTS(first_audio_s=0.15)])

    async def body(c: Conversation) -> None:
        await c.say(("How was your day", 1.0), 2.0)
        await c.turns(1)

    c = run(settings, stages, body)
    rec = c.records()[0]
    assert c.kinds()[:6] == ["user_speaking", "thinking", "speaking", "user:final", "assistant:final", "turn:answered"]
    assert (rec.outcome, rec.end_reason, rec.user_text) == ("answered", "smart_turn", "How was your day")
    t = rec.timings()
    assert 190 <= t["eot_delay_ms"] <= 260  # Smart Turn's 200 ms pause, on 32 ms chunks
    assert rec.stt_reused  # the transcript started at the first silent chunk was the one used
    assert 195 <= t["llm_ttft_ms"] <= 215 and 140 <= t["tts_ttfb_ms"] <= 170
    assert rec.reply_text.split() == REPLY.split()  # played to the end
    assert c.engine.brain.history == [{"role": "user", "content": "How was your day"},
                                      {"role": "assistant", "content": rec.reply_text}]


def test_a_continuation_before_the_first_audio_is_merged_into_one_turn(settings):
    stages = fake_components(settings, [FakeLLM(first_token_s=1.0)])

    async def body(c: Conversation) -> None:
        await c.say(("I went to the market", 1.0), 0.45, ("and bought apples", 1.0), 2.0)
        await c.turns(2)

    c = run(settings, stages, body)
    first, merged = c.records()[:2]
    assert (first.outcome, merged.outcome) == ("continued", "answered")
    assert first.turn_id == merged.turn_id and merged.user_text == "I went to the market and bought apples"
    assert [m["role"] for m in c.engine.brain.history] == ["user", "assistant"]
    assert not any(isinstance(e, AudioOut) and t < 1.6 for t, e in c.events)  # she never spoke over the user


def test_a_continuation_after_the_first_audio_interrupts_and_is_answered_alone(settings):
    stages = fake_components(settings, [FakeLLM(reply=REPLY, first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        await c.say(("Tell me something", 1.0), 1.2, ("actually never mind that, what time is it", 2.0), 2.0)
        await c.turns(2)

    c = run(settings, stages, body)
    first, second = c.records()[:2]
    assert first.outcome == "interrupted" and first.barge_in_stop is not None
    assert second.outcome == "answered" and second.user_text == "actually never mind that, what time is it"


def test_barge_in_with_words_interrupts_and_the_history_keeps_only_the_heard_words(settings):
    stages = fake_components(settings, [FakeLLM(reply=REPLY, first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        await c.say(("Tell me a story", 1.0), 0.3)
        onset = await c.speaking() + 1.0
        await asyncio.sleep(max(0.0, onset - c.now()))
        await c.say(("wait please stop", 1.2), 2.0)
        await c.turns(2)

    c = run(settings, stages, body)
    first = c.records()[0]
    assert first.outcome == "interrupted" and 0 < len(first.reply_text) < len(REPLY)
    assert ms(first.barge_in_stop - first.barge_in_onset) <= 40  # paused within a chunk of the onset
    assert {"role": "assistant", "content": first.reply_text} in c.engine.brain.history
    assert "flush" in c.kinds()


def test_a_backchannel_over_the_reply_lets_her_go_on(settings):
    stages = fake_components(settings, [FakeLLM(reply=REPLY, first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        await c.say(("Tell me a story", 1.0), 0.3)
        await asyncio.sleep(max(0.0, await c.speaking() + 0.8 - c.now()))
        await c.say(("yeah", 0.4), 0.5)
        await c.turns(1)

    c = run(settings, stages, body)
    rec = c.records()[0]
    assert rec.outcome == "answered" and rec.backchannels == ["yeah"]
    assert rec.reply_text.split() == " ".join(stages.ttss[0].clauses).split()  # every clause was heard


def test_noise_over_the_reply_pauses_her_and_she_resumes_after_the_quiet(settings):
    stages = fake_components(settings, [FakeLLM(reply=REPLY, first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        await c.say(("Tell me a story", 1.0), 0.3)
        await asyncio.sleep(max(0.0, await c.speaking() + 0.8 - c.now()))
        calls.append(stages.stt.calls)
        await c.say(("(click)", 0.1), 1.0)  # shorter than vad.min_speech_ms: never a turn
        await c.turns(1)

    calls: list[int] = []
    c = run(settings, stages, body)
    rec = c.records()[0]
    assert rec.outcome == "answered" and rec.barge_in_onset is not None and len(c.records()) == 1
    assert rec.reply_text.split() == REPLY.split()  # she resumed and finished
    assert stages.stt.calls == calls[0]  # the click was never transcribed
    paused = [t for t, e in c.events if isinstance(e, AudioFlush)]
    audio_after = [t for t, e in c.events if isinstance(e, AudioOut) and t > paused[0]]
    assert 0.2 <= audio_after[0] - paused[0] <= 0.45  # silent at the onset, back after resume_after_ms of quiet


def test_her_own_echo_does_not_interrupt_her(settings):
    stages = fake_components(settings, [FakeLLM(reply=REPLY, first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        await c.say(("Tell me a story", 1.0), 0.3)
        await asyncio.sleep(max(0.0, await c.speaking() + 0.8 - c.now()))
        await c.say(("that sounds lovely", 0.5), 1.0)  # her own words, back through the microphone
        await c.turns(1)

    c = run(settings, stages, body)
    rec = c.records()[0]
    assert rec.outcome == "answered" and len(c.records()) == 1


def test_talk_over_that_cannot_be_transcribed_lets_her_go_on(settings):
    stages = fake_components(settings, [FakeLLM(reply=REPLY, first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        await c.say(("Tell me a story", 1.0), 0.3)
        await asyncio.sleep(max(0.0, await c.speaking() + 0.8 - c.now()))
        stages.stt.fail_next = 1  # the talk-over's transcription fails (a real server saw this hold a call silent)
        await c.say(("mm okay", 0.4), 0.5)
        await c.turns(1)

    c = run(settings, stages, body)
    rec = c.records()[0]
    assert rec.outcome == "answered" and rec.reply_text.split() == REPLY.split()


def test_an_llm_silent_past_its_first_token_timeout_is_replaced_by_the_next(settings):
    hung, second = FakeLLM(mode="hang", name="hung"), FakeLLM(reply="I am here.", first_token_s=0.2, name="second")
    stages = fake_components(settings, [hung, second])

    async def body(c: Conversation) -> None:
        await c.say(("Are you there", 1.0), 3.0)
        await c.turns(1)

    c = run(settings, stages, body)
    rec = c.records()[0]
    assert (rec.outcome, rec.llm_backend, rec.reply_text) == ("answered", "second", "I am here.")
    assert 1190 <= rec.timings()["llm_ttft_ms"] <= 1260  # first_token_timeout_s 1.0 + the second's 0.2


def test_all_llms_down_gives_the_personas_fallback_line(settings):
    stages = fake_components(settings, [FakeLLM(mode="raise")])

    async def body(c: Conversation) -> None:
        await c.say(("Are you there", 1.0), 3.0)
        await c.turns(1)

    c = run(settings, stages, body)
    rec = c.records()[0]
    assert rec.route == "fallback" and rec.reply_text == stages.components.persona.fallback_line
    assert "error:llm_error" in c.kinds() and rec.outcome == "answered"


def test_a_tts_failure_mid_reply_hands_the_rest_to_the_next_backend(settings):
    first, second = FakeTTS(fail_on=(2,), name="first-tts"), FakeTTS(name="second-tts")
    stages = fake_components(settings, [FakeLLM(reply=REPLY, first_token_s=0.1)], [first, second])

    async def body(c: Conversation) -> None:
        await c.say(("Tell me a story", 1.0), 0.3)
        await c.turns(1, timeout=60)

    c = run(settings, stages, body)
    rec = c.records()[0]
    assert rec.outcome == "answered" and rec.tts_backend == "second-tts"
    assert len(first.clauses) == 2 and second.clauses and second.clauses[0] == first.clauses[1]


def test_hanging_up_mid_reply_records_the_turn_as_hangup(settings):
    stages = fake_components(settings, [FakeLLM(reply=REPLY, first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        await c.say(("Tell me a story", 1.0), 0.3)
        await asyncio.sleep(max(0.0, await c.speaking() + 1.0 - c.now()))
        await c.engine.aclose()
        await asyncio.sleep(0.1)

    c = run(settings, stages, body)
    rec = c.engine.records[0]
    assert rec.outcome == "hangup" and 0 < len(rec.reply_text) < len(REPLY)
    assert c.engine.tasks.pending() == []  # reply, player, transcriptions: all ended with the call


def test_a_typed_turn_during_a_reply_interrupts_it_and_is_answered(settings):
    stages = fake_components(settings, [FakeLLM(reply=lambda u: f"You said {u}.", first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        c.engine.push_text("Tell me about the sea and the sky and the stars above us tonight")
        await asyncio.sleep(max(0.0, await c.speaking() + 0.5 - c.now()))
        c.engine.push_text("Stop")
        await c.turns(2)

    c = run(settings, stages, body)
    first, second = c.records()[:2]
    assert (first.outcome, second.outcome, second.source, second.reply_text) == (
        "interrupted", "answered", "text", "You said Stop.")


def test_a_refused_turn_is_recorded_and_a_refused_typed_turn_leaves_the_reply_alone(settings):
    stages = fake_components(settings, [FakeLLM(reply=REPLY, first_token_s=0.1)])
    admitted = [True, False, False]

    async def body(c: Conversation) -> None:
        c.engine.turn_gate = lambda: None if admitted.pop(0) else ("rate_limited", "too many turns")
        c.engine.push_text("Tell me a story")
        await asyncio.sleep(max(0.0, await c.speaking() + 0.5 - c.now()))
        c.engine.push_text("Stop")  # refused: the story goes on
        await c.turns(2, timeout=60)
        await c.say(0.5, ("And another thing", 1.0), 2.0)  # a spoken turn after the story: refused too
        await c.turns(3)

    c = run(settings, stages, body)
    assert [(r.user_text, r.outcome) for r in c.records()] == [
        ("Stop", "refused"), ("Tell me a story", "answered"), ("", "refused")]  # a refused voice turn is not transcribed
    assert c.records()[1].reply_text.split() == REPLY.split()  # the story was not cut
    assert c.kinds().count("error:rate_limited") == 2


def test_she_backchannels_in_a_long_pause_without_taking_the_turn(settings):
    stages = fake_components(settings, [FakeLLM(first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        await c.say(("so yesterday I was thinking about my plans for the summer...", 4.5), 1.0,
                    ("and I want to travel", 1.0), 2.0)
        await c.turns(1)

    c = run(settings, stages, body)
    rec = c.records()[0]
    assert rec.outcome == "answered" and len(rec.backchannels_said) == 1
    assert rec.user_text.endswith("and I want to travel")
    heard_before_turn = [t for t, e in c.events if isinstance(e, AudioOut) and t < 6.0]
    assert heard_before_turn and 4.9 <= heard_before_turn[0] <= 5.2  # ~450 ms into the pause, one short phrase


def test_speech_longer_than_the_max_utterance_is_cut_and_answered():
    settings = scenario_settings(turn={"max_utterance_s": 3.0})
    stages = fake_components(settings, [FakeLLM(first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        await c.say(("I keep talking and talking", 4.0), 2.0)
        await c.turns(1)

    c = run(settings, stages, body)
    cut = c.records()[0]
    assert cut.end_reason == "max_length" and "error:max_utterance" in c.kinds()
    assert 2.9 <= cut.eot - c.t0 <= 3.1  # cut at max_utterance_s of speech, not at its end (4 s)


def test_the_prompt_prefix_is_warmed_again_once_the_callers_notes_are_read(tmp_path):
    # On a real event loop: the notes are read in a worker thread, which virtual time would not wait for.
    settings = scenario_settings(memory={"dir": str(tmp_path)})
    llm = FakeLLM()
    stages = fake_components(settings, [llm])
    UserMemory(settings.memory.dir, settings.memory.summary_max_chars).save("caller-key", "Likes sailing.")

    async def main() -> None:
        async with TurnEngine(stages.components, settings, FastForwardClock()) as engine:
            engine.memory.set_key("caller-key")
            for _ in range(200):
                if llm.warmed:
                    break
                await asyncio.sleep(0.01)
            assert engine.brain.system_message() == llm.warmed[-1][0]["content"]

    asyncio.run(main())
    assert "Likes sailing." in llm.warmed[-1][0]["content"]


def test_turns_after_a_crisis_turn_go_to_the_llm_told_to_stay_on_it_for_the_configured_number_of_turns():
    # What the router lets through after a crisis turn goes to the LLM with the persona's crisis_followup at the end of
    # the system prompt, in the crisis voice, for brain.crisis_followup_turns turns; the prompt is warmed again when
    # the follow-up begins and ends.
    settings = scenario_settings(brain={"crisis_followup_turns": 2})
    llm = FakeLLM(reply="I'm here with you.", first_token_s=0.1)
    stages = fake_components(settings, [llm])
    followup = stages.components.persona.crisis_followup.strip()
    lines = ["I want to kill myself.", "Are you still there?", "I can't do this.", "Tell me about the sea.",
             "I'm going to end my life.", "Thank you, I'll call them now."]

    async def body(c: Conversation) -> None:
        for n, line in enumerate(lines, 1):
            c.engine.push_text(line)
            await c.turns(n)

    c = run(settings, stages, body)
    routes = [(r.route, r.safety_category) for r in c.records()]
    assert routes == [("safety", "suicide"), ("llm", None), ("llm", None), ("llm", None), ("safety", "suicide"),
                      ("llm", None)]
    assert llm.calls == [lines[1], lines[2], lines[3], lines[5]]
    assert [system.endswith(followup) for system in llm.systems] == [True, True, False, True]
    crisis_voice = stages.components.emotion.for_safety(True)
    assert [r.emotion == crisis_voice for r in c.records()] == [True, True, True, False, True, True]
    brain = c.engine.brain  # one follow-up turn left: commit says when the system prompt changes
    assert brain.commit("Okay.", "Good.") is True and brain.commit("Hi.", "Hello.") is False
    assert brain.commit("I want to die.", "...", crisis=True) is True


def test_a_callers_notes_are_saved_when_the_shared_model_is_busy_past_the_live_first_token_timeout(tmp_path):
    # One llama.cpp model serves every call: a closing call's summary waits behind the others' replies. It gets
    # memory.summary_timeout_s of patience, not the live chain's first-token timeout, and its wait marks nothing failed.
    settings = scenario_settings(memory={"dir": str(tmp_path)})
    llm = FakeLLM(reply=lambda u: "Likes sailing." if "\n" in u else "How lovely.", first_token_s=0.1)
    spare = FakeLLM(reply="Unrelated words.", name="spare")
    stages = fake_components(settings, [llm, spare])
    chain = stages.components.llm
    busy_s = settings.llm.stall_timeout_s + 2.0
    assert settings.llm.first_token_timeout_s < busy_s < settings.memory.summary_timeout_s

    async def body(c: Conversation) -> None:
        c.engine.memory.set_key("caller-key")
        c.engine.push_text("I sail every weekend.")
        await c.turns(1)
        llm.first_token_s = busy_s  # the model is now busy with other calls' replies
        t0 = c.now()
        assert await c.engine.memory.save() == "Likes sailing."
        assert busy_s <= c.now() - t0 < settings.memory.summary_timeout_s

    run(settings, stages, body)
    assert UserMemory(tmp_path, settings.memory.summary_max_chars).load("caller-key") == "Likes sailing."
    assert chain.health.order() == [0, 1] and spare.calls == []  # the busy model is still first for live turns
    assert llm.calls[-1].startswith("user: I sail every weekend.")


def test_a_microphone_feed_hands_each_event_to_its_observers_and_stops_at_their_word(settings):
    """The frame pump every real-time driver shares (eval tasks, real-model tests): events reach the observers in
    order after each frame, the chat log folds them as the page shows them, and ``until`` ends the feed early."""
    stages = fake_components(settings, [FakeLLM(reply=REPLY, first_token_s=0.2)])

    class Notes(EngineObserver):
        def __init__(self) -> None:
            self.kinds: list[str] = []

        def on_audio(self, ev: AudioOut) -> None:
            if not self.kinds or self.kinds[-1] != "audio":
                self.kinds.append("audio")

        def on_status(self, ev: StatusEvent) -> None:
            self.kinds.append(ev.state)

        def on_turn_done(self, ev: TurnDone) -> None:
            self.kinds.append(f"turn:{ev.record.outcome}")

    notes, chat = Notes(), ChatLog()
    audio = stages.script.audio([("How was your day", 1.0)])
    tail_s = 60.0  # far longer than the reply: the feed must end at the turn, not here

    async def main() -> int:
        async with TurnEngine(stages.components, settings, clock=LoopClock()) as engine:
            return await play(engine, clip_then_silence(audio, tail_s), notes, chat,
                              until=lambda: "turn:answered" in notes.kinds)

    loop = asyncio.new_event_loop()
    looptime.patch_event_loop(loop)
    try:
        frames = loop.run_until_complete(main())
    finally:
        loop.close()
    assert notes.kinds == ["user_speaking", "thinking", "speaking", "audio", "turn:answered", "listening"]
    assert frames * FRAME_S < tail_s / 2  # stopped at the answer, long before the tail's end
    assert chat.messages == [{"role": "user", "content": "How was your day"},
                             {"role": "assistant", "content": " ".join(REPLY.split())}]
    assert chat.timings["route"] and chat.timings["llm_ttft_ms"] >= 200


def test_a_long_turn_shows_partial_transcripts_while_the_user_speaks(settings):
    stages = fake_components(settings, [FakeLLM(first_token_s=0.1)])
    words = "I have been thinking about moving to another city next year"

    async def body(c: Conversation) -> None:
        await c.say((words, 3.5), 2.0)
        await c.turns(1)

    c = run(settings, stages, body)
    partials = [(t, e) for t, e in c.events if isinstance(e, TranscriptEvent) and e.role == "user" and not e.final]
    rec = c.records()[0]
    while_speaking = [t for t, e in partials if e.text == words and t < 3.5]
    # one per partial_interval_ms (1 s) of speech, the last STT run of the turn's budget kept for its final one
    limit = min(3, settings.limits.max_stt_runs_per_turn - 1)
    assert 1 <= len(while_speaking) <= limit and while_speaking[0] >= 1.0
    assert rec.outcome == "answered" and rec.user_text == words
    assert all(e.turn_id == rec.turn_id for _, e in partials)


def test_a_call_tuned_live_uses_the_new_settings_from_its_next_turn_and_its_records_say_so(settings):
    stages = fake_components(settings, [FakeLLM(first_token_s=0.1)])
    changes = {"turn.mode": "vad_only", "turn.silence_ms": 700, "vad.threshold": 0.6, "brain.reply_emotion": "excited"}

    async def body(c: Conversation) -> None:
        await c.say(("How was your day", 1.0), 0.05)
        c.engine.tuning.request(changes)  # mid-turn: this turn keeps the settings it started with
        await c.say(1.5)
        await c.turns(1)
        for bad in ({"turn.silence_ms": -1}, {"vad.threshold": 2}, {"llm.max_tokens": 5},
                    {"brain.reply_emotion": "furious"}):
            with pytest.raises(ValueError):
                c.engine.tuning.request(bad)  # refused, and nothing of the good change is lost
        await c.say(("Tell me about the sea", 1.0), 1.5)
        await c.turns(2)

    c = run(settings, stages, body)
    first, second = c.records()[:2]
    assert (first.end_reason, first.tuning) == ("smart_turn", {})
    assert (second.end_reason, second.tuning, second.emotion) == ("silence", changes, "excited")
    assert 690 <= second.eot_delay_ms <= 780  # the 700 ms silence window, on 32 ms chunks
    assert c.engine.listener.vad.segmenter.settings.threshold == 0.6
    c.engine.tuning.request({"turn.mode": "smart_turn", "turn.silence_ms": 700.0})  # mode set back; a slider's float
    assert c.engine.tuning.requested == {"turn.silence_ms": 700, "vad.threshold": 0.6, "brain.reply_emotion": "excited"}


def test_a_turn_done_carries_the_users_audio_and_the_speech_regions_the_vad_found_in_it():
    settings = scenario_settings(turn={"mode": "vad_only"})  # the 0.3 s gap stays inside the turn
    stages = fake_components(settings, [FakeLLM(first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        await c.say(0.5, ("I went to the market", 1.0), 0.3, ("and bought apples", 0.8), 2.0)  # a gap inside the turn
        await c.turns(1)

    c = run(settings, stages, body)
    done = next(e for _, e in c.events if isinstance(e, TurnDone))
    (a0, a1), (b0, b1) = done.regions
    pad, chunk = settings.vad.speech_pad_ms / 1000, 0.032
    assert abs(a0 - pad) <= 2 * chunk and abs(a1 - a0 - 1.0) <= 2 * chunk  # the first utterance, after the pre-pad
    assert abs(b0 - a1 - 0.3) <= 2 * chunk and abs(b1 - b0 - 0.8) <= 2 * chunk  # the gap, then the second one
    assert abs(len(done.audio) / 16000 - (b1 + pad)) <= 2 * chunk  # what the VAD saw, padded both sides
    assert done.record.user_text == "I went to the market and bought apples"


def test_a_call_can_ask_another_loaded_llm_first_from_its_next_turn():
    settings = scenario_settings(llm={"chain": ["llama_cpp", "ollama"]})
    stages = fake_components(settings, [FakeLLM(name="embedded", first_token_s=0.1),
                                        FakeLLM(name="server", first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        await c.say(("Hello there", 1.0), 2.0)
        await c.turns(1)
        c.engine.tuning.request({"llm.chain": ["ollama", "llama_cpp"]})
        with pytest.raises(ValueError, match="not loaded"):
            c.engine.tuning.request({"llm.chain": ["openai"]})
        await c.say(("What do you think", 1.0), 2.0)
        await c.turns(2)

    c = run(settings, stages, body)
    first, second = c.records()[:2]
    assert (first.llm_backend, second.llm_backend) == ("embedded", "server")
    assert second.tuning == {"llm.chain": ["ollama", "llama_cpp"]}
    assert stages.components.llm.models[0].name == "embedded"  # the server's shared chain is untouched


def test_the_reply_prepared_in_the_pause_waits_for_the_end_of_turn_and_is_heard_sooner():
    """turn.preemptive: the speculative transcript of the pause starts the LLM and the first clause's TTS before
    Smart Turn's verdict; nothing sounds before the end of the turn, and the first audio comes earlier than when
    the reply starts at the verdict."""

    def turn(preemptive: bool, first_token_s: float) -> tuple:
        settings = scenario_settings(turn={"preemptive": "reply" if preemptive else "none"})
        stages = fake_components(settings, [FakeLLM(reply=REPLY, first_token_s=first_token_s, tokens_per_s=200)],
                                 [FakeTTS(first_audio_s=0.02)])

        async def body(c: Conversation) -> None:
            await c.say(("How was your day", 1.0), 2.0)
            await c.turns(1)

        c = run(settings, stages, body)
        return c, c.records()[0]

    c, rec = turn(True, 0.02)  # ready long before Smart Turn's verdict: held until then
    assert rec.preempt == "reused" and rec.preempts_dropped == 0 and rec.outcome == "answered"
    assert rec.llm_start < rec.eot and rec.tts_first_audio < rec.eot  # prepared during the pause
    assert rec.first_audio_out >= rec.eot and 0 <= ms(rec.first_audio_out - rec.eot) <= 60  # heard at the verdict
    assert c.kinds()[:3] == ["user_speaking", "thinking", "speaking"]
    assert [m["content"] for m in c.engine.brain.history][:1] == ["How was your day"]

    preempted, plain = turn(True, 0.3)[1], turn(False, 0.3)[1]
    assert preempted.preempt == "reused" and plain.preempt is None
    # The LLM started at the speculative transcript, ~100 ms before Smart Turn's verdict at 200 ms of pause.
    assert preempted.llm_start <= preempted.eot - 0.08 and preempted.v2v_ms <= plain.v2v_ms - 80


def test_a_prepared_reply_is_dropped_unheard_when_the_user_goes_on(settings):
    stages = fake_components(settings, [FakeLLM(reply=REPLY, first_token_s=0.1)], [FakeTTS(first_audio_s=0.05)])

    async def body(c: Conversation) -> None:
        # "..." makes the fake Smart Turn say "incomplete"; its transcript reads finished: a reply is prepared.
        await c.say(("I went to the market...", 1.0), 0.7, ("and bought apples", 1.0), 2.0)
        await c.turns(1)

    c = run(settings, stages, body)
    [rec] = c.records()
    assert rec.outcome == "answered" and rec.user_text == "I went to the market and bought apples"
    # Wasted: from ~100 ms into the 700 ms pause until the VAD confirmed the speech going on.
    assert rec.preempt == "reused" and rec.preempts_dropped == 1 and 500 <= rec.preempt_wasted_ms <= 1000
    assert stages.llms[0].calls == ["I went to the market", "I went to the market and bought apples"]
    assert not any(isinstance(e, AudioOut) and t < 2.7 for t, e in c.events)  # the dropped reply was never heard
    said = [e.text for e in c.of(TranscriptEvent) if e.role == "assistant"]
    assert said and all(e.turn_id == rec.turn_id for e in c.of(TranscriptEvent))
    assert [m["content"] for m in c.engine.brain.history][::2] == ["I went to the market and bought apples"]


def test_a_transcript_that_reads_unfinished_gets_its_prompt_computed_but_no_reply(settings):
    stages = fake_components(settings, [FakeLLM(first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        await c.say(("so I went to the...", 1.0), 0.7, ("bakery", 0.6), 2.0)
        await c.turns(1)

    c = run(settings, stages, body)
    assert stages.llms[0].calls == ["so I went to the bakery"] and c.records()[0].preempts_dropped == 0
    warmed = stages.llms[0].warmed[-1]  # the prompt of the words so far: system, (history), the user's message
    assert [m["role"] for m in warmed] == ["system", "user"] and warmed[-1]["content"] == "so I went to the"
    assert c.engine.preempt.unfinished("I was thinking, um") and c.engine.preempt.unfinished("and then,")
    assert not c.engine.preempt.unfinished("I went to the market") and not c.engine.preempt.unfinished("")


def test_preemption_of_the_prompt_only_computes_the_prompt_at_every_pause():
    settings = scenario_settings(turn={"preemptive": "prompt"})
    stages = fake_components(settings, [FakeLLM(first_token_s=0.1)])

    async def body(c: Conversation) -> None:
        await c.say(("I went to the market...", 1.0), 0.7, ("and bought apples", 1.0), 2.0)
        await c.turns(1)

    c = run(settings, stages, body)
    rec = c.records()[0]
    assert stages.llms[0].calls == ["I went to the market and bought apples"]  # no reply was prepared
    assert [w[-1]["content"] for w in stages.llms[0].warmed if w[-1]["role"] == "user"][:1] == ["I went to the market"]
    assert rec.preempt is None and rec.preempts_dropped == 0
