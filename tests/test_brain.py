"""Persona files, emotion labels and the brain's plan, and LLM failure through the real engine."""

from __future__ import annotations

import asyncio
import socket

import pytest
from pydantic import ValidationError

from oviya.brain.emotion import EmotionDetector, load_emotion_config
from oviya.brain.identity import IdentityRouter, load_identity_rules
from oviya.brain.persona import Persona, load_persona
from oviya.clock import FastForwardClock
from oviya.config import CONFIG_DIR
from oviya.engine import TurnEngine
from oviya.events import ErrorEvent, TurnDone
from oviya.llm.fallback import FallbackChat
from oviya.llm.openai_compat import OpenAICompatChat


@pytest.fixture(scope="module")
def detector(settings) -> EmotionDetector:
    return EmotionDetector(load_emotion_config(CONFIG_DIR / settings.brain.emotion))


@pytest.mark.parametrize("text, label", [
    ("I just got promoted, I'm so happy!", "happy"),
    ("My cat died and I miss her so much.", "sad"),
    ("I'm furious, my landlord ignored me again.", "angry"),
    ("I'm really nervous about my exam tomorrow.", "fearful"),
    ("Wow, no way, guess what happened!", "surprised"),
    ("What time is it?", "neutral"),
    ("I'm not happy about this.", "sad"),  # negation flips the cue
])
def test_user_emotion_from_text(detector, text, label):
    assert detector.of_user(text) == label


def test_reply_emotion_follows_the_user_and_the_persona_default(detector):
    assert detector.reply_for("sad", "calm") == "empathetic" and detector.reply_for("neutral", "calm") == "calm"
    assert detector.of_reply("Congratulations, that's wonderful news!", "calm") == "joyful"
    assert detector.of_reply("I'm so sorry, that sounds hard.", "calm") == "empathetic"


def test_every_persona_file_is_complete_and_speaks_known_emotions(detector):
    for path in (CONFIG_DIR / "personas").glob("*.yaml"):
        persona = load_persona(path.stem)
        assert persona.default_emotion in detector.config.reply_labels, path


def test_a_persona_without_every_safety_reply_is_rejected():
    base = load_persona("oviya").model_dump()
    base["safety_replies"].pop("abuse")
    with pytest.raises(ValidationError, match="abuse"):
        Persona(**base)


def test_unknown_persona_lists_the_known_ones():
    with pytest.raises(FileNotFoundError, match="oviya"):
        load_persona("nobody")


def test_switching_persona_changes_the_system_prompt(components, settings):
    engine = TurnEngine(components, settings, FastForwardClock())
    engine.brain.set_persona(load_persona("sunny"), "sunny")
    assert "Sunny" in engine.brain.messages_for("hi")[0]["content"]
    assert engine.brain.plan("What time is it?").emotion == "joyful"  # sunny's default emotion


def test_when_every_llm_is_down_the_user_still_hears_the_fallback_line(components, settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = OpenAICompatChat(settings.llm.openai.model_copy(update={"base_url": f"http://127.0.0.1:{port}/v1"}))
    comps = type(components)(**{**components.__dict__, "llm": FallbackChat([down], 1.0, 5.0, 30.0)})

    async def run() -> tuple[TurnDone, list]:
        events = []
        async with TurnEngine(comps, settings, FastForwardClock()) as engine:
            engine.push_text("Tell me about your day.")
            while not isinstance(ev := await engine.next_event(30), TurnDone):
                assert ev is not None
                events.append(ev)
            return ev, events

    done, events = asyncio.run(run())
    assert done.record.route == "fallback" and done.record.reply_text == components.persona.fallback_line
    assert any(isinstance(e, ErrorEvent) and e.code == "llm_error" for e in events)


@pytest.fixture(scope="module")
def identity(settings) -> IdentityRouter:
    return IdentityRouter(load_identity_rules(CONFIG_DIR / settings.brain.identity))


@pytest.mark.parametrize("text, question, whole_turn", [
    ("Are you a real person?", "is_ai", True),
    ("Wait, am I talking to a bot right now?", "is_ai", True),
    ("Honestly, is this an AI?", "is_ai", True),
    ("are you human", "is_ai", True),
    ("Who made you?", "creator", True),
    ("What's your name?", "name", True),
    ("What should I call you?", "name", True),
    ("Honestly I feel like you're a human.", "is_ai", True),  # a claim about Oviya is answered like the question
    ("My boss yelled at me all afternoon and I feel awful. Are you even a real person?", "is_ai", False),
])
def test_identity_questions_are_recognised(identity, text, question, whole_turn):
    match = identity.check(text)
    assert match is not None and (match.question, match.whole_turn) == (question, whole_turn)


@pytest.mark.parametrize("text", ["Are you doing okay?", "What are you up to tonight?", "What's my name again?",
                                  "Is this a real diamond?", "I met a real person at the bot fair.",
                                  "My name is Sam, who made the cake?", "You're a real friend."])
def test_other_questions_are_not_identity_questions(identity, text):
    assert identity.check(text) is None


def test_are_you_a_person_gets_the_personas_truthful_answer_without_the_llm(components, settings):
    brain = TurnEngine(components, settings, FastForwardClock()).brain

    async def reply(text: str) -> tuple[str, str]:
        plan = brain.plan(text)
        return plan.route, "".join([d async for d in brain.stream(text, plan)])

    assert asyncio.run(reply("Are you a real person?")) == ("identity", components.persona.identity_replies["is_ai"])
    # inside a longer turn the LLM answers, told the truth for this turn only (after the cached system prompt)
    text = "I had a rough day and my sister ignored me. Are you even a real person?"
    plan = brain.plan(text)
    messages = brain.messages_for(text, plan.identity)
    assert plan.route == "llm" and components.persona.identity_replies["is_ai"] in messages[-1]["content"]
    assert messages[0]["content"] == brain.system_message() and "not a person" in messages[0]["content"]


def test_user_emotion_from_embeddings_reads_lines_without_any_cue_word(settings):
    from oviya.brain.embedding import SentenceEmbedder

    detector = EmotionDetector(load_emotion_config(CONFIG_DIR / settings.brain.emotion), SentenceEmbedder())
    assert detector.of_user("We closed on our first house this morning!") == "happy"
    assert detector.of_user("The vet said there's nothing more they can do for my old dog.") == "sad"
    assert detector.of_user("How many legs does a spider have?") == "neutral"
