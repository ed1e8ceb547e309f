"""Persona files, emotion labels and the brain's plan, and LLM failure through the real engine."""

from __future__ import annotations

import asyncio
import socket

import pytest
from pydantic import ValidationError

from oviya.brain.emotion import EmotionDetector, load_emotion_config
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
