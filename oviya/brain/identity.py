"""Identity router: questions about what the assistant is get the persona's fixed, truthful answer.

Every embedded chat model we measured (SmolLM2-135M, Qwen2.5-Coder 0.5B and 1.5B) answered "Are you a real person?"
with "Yes, I am a real person" at least once, and the smallest invent names and jobs. Honesty about being an AI is
not left to sampling: :class:`IdentityRouter` spots such questions with the regular expressions of
``config/identity.yaml`` (over the same normalised text as the safety rules) and the brain answers from the
persona's ``identity_replies``. The persona prompt also states the facts, for everything the router does not catch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from oviya.brain.safety import normalise

Question = Literal["is_ai", "creator", "name"]


class IdentityRules(BaseModel):
    """``config/identity.yaml``."""

    model_config = ConfigDict(extra="forbid")

    max_other_words: int = Field(ge=0, description="words besides the question (and fillers) for a fixed reply")
    fillers: list[str]
    questions: dict[Question, list[str]]


@dataclass(frozen=True)
class IdentityMatch:
    """An identity question in the user's turn.

    Attributes:
        question: which fact is asked about (a key of the persona's ``identity_replies``).
        whole_turn: the question is (nearly) all the user said: the fixed answer is the whole reply. Otherwise the
            LLM answers the turn and is told the fixed answer as the truth.
    """

    question: Question
    whole_turn: bool


def load_identity_rules(path: Path) -> IdentityRules:
    """Read and validate ``config/identity.yaml``.

    Raises:
        FileNotFoundError, pydantic.ValidationError, re.error: missing file, bad key, invalid pattern.
    """
    rules = IdentityRules(**yaml.safe_load(path.read_text()))
    for patterns in rules.questions.values():
        for p in patterns:
            re.compile(p)
    return rules


class IdentityRouter:
    """Finds identity questions in user text (microseconds, no model).

    Args:
        rules: patterns and the whole-turn rule (see :func:`load_identity_rules`).
    """

    def __init__(self, rules: IdentityRules) -> None:
        self._rules = rules
        self._fillers = set(rules.fillers)
        self._patterns = [(q, re.compile(p)) for q, ps in rules.questions.items() for p in ps]

    def check(self, text: str) -> IdentityMatch | None:
        """The first identity question asked in ``text``, else None."""
        t = normalise(text)
        for question, pattern in self._patterns:
            if m := pattern.search(t):
                rest = [w for w in (t[: m.start()] + " " + t[m.end() :]).split() if w not in self._fillers]
                return IdentityMatch(question, len(rest) <= self._rules.max_other_words)
        return None
