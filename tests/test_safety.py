"""The safety router on the labelled set (tests/data/safety.jsonl), and safety routing through the real engine."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from oviya.brain.safety import SafetyRouter, load_rules, normalise
from oviya.clock import FastForwardClock
from oviya.config import CONFIG_DIR
from oviya.engine import TurnEngine
from oviya.events import TurnDone

DATA = Path(__file__).parent / "data" / "safety.jsonl"


@pytest.fixture(scope="module")
def router(settings) -> SafetyRouter:
    return SafetyRouter(load_rules(CONFIG_DIR / settings.brain.safety))


@pytest.fixture(scope="module")
def labelled() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]


def test_labelled_set_is_large_and_has_hard_negatives(labelled):
    assert len(labelled) >= 100
    assert sum(r["crisis"] for r in labelled) >= 50 and sum(not r["crisis"] for r in labelled) >= 50


def test_every_explicit_crisis_is_caught_in_its_category(router, labelled):
    missed = [(r["text"], router.check_input(r["text"])) for r in labelled if r["crisis"]
              if (v := router.check_input(r["text"])) is None or v.category != r["category"]]
    assert missed == []


def test_false_positives_stay_under_five_percent(router, labelled):
    negatives = [r for r in labelled if not r["crisis"]]
    flagged = [r["text"] for r in negatives if (v := router.check_input(r["text"])) is not None and v.crisis]
    assert len(flagged) / len(negatives) <= 0.05, flagged


def test_harmful_requests_are_declined_but_are_not_crises(router, labelled):
    for r in (r for r in labelled if r.get("category") == "harmful_request"):
        verdict = router.check_input(r["text"])
        assert verdict is not None and verdict.category == "harmful_request" and not verdict.crisis, r["text"]


def test_unsafe_model_output_is_caught(router):
    assert router.check_output("Maybe you should just kill yourself.").category == "unsafe_output"
    assert router.check_output("Please take care of yourself tonight.") is None


def test_normalisation_expands_contractions_and_curly_quotes():
    assert normalise("I’m done, I can't… I don't WANNA live!") == "i am done i cannot i do not want to live"


def test_a_crisis_turn_gets_the_personas_safe_reply_without_the_llm(components, settings):
    async def run() -> TurnDone:
        async with TurnEngine(components, settings, FastForwardClock()) as engine:
            engine.push_text("I don't want to live anymore, I'm going to end my life.")
            while not isinstance(ev := await engine.next_event(30), TurnDone):
                assert ev is not None
            return ev

    rec = asyncio.run(run()).record
    assert rec.route == "safety" and rec.safety_category == "suicide" and rec.llm_backend is None
    assert rec.reply_text.startswith("I'm really glad you told me") and "nine eight eight" in rec.reply_text
    assert rec.emotion == "concerned" and rec.outcome == "answered"
