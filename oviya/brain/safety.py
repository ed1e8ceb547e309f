"""Safety router: crisis and harmful-request detection before the LLM, and an unsafe-output check after it.

Rule-based on purpose: a crisis must be caught every time it is stated explicitly (recall over cleverness), the
rules are readable and editable in ``config/safety.yaml``, and the check costs microseconds so it never delays a
reply. Figures of speech ("this joke is killing me") are removed before matching. The rules cover explicit English
statements; implicit or indirect distress is left to the persona prompt. Measured by ``python -m eval safety``
(recall and false-positive rate on ``tests/data/safety.jsonl``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

Category = Literal["suicide", "self_harm", "abuse", "medical_emergency", "harmful_request", "unsafe_output"]
CRISIS: tuple[Category, ...] = ("suicide", "self_harm", "abuse", "medical_emergency")

_CONTRACTIONS = [
    (r"\bcan'?t\b", "cannot"), (r"\bwon'?t\b", "will not"), (r"\b(\w+)n't\b", r"\1 not"), (r"\bi'?m\b", "i am"),
    (r"'re\b", " are"), (r"'ve\b", " have"), (r"'ll\b", " will"), (r"'d\b", " would"), (r"\bwanna\b", "want to"),
    (r"\bgonna\b", "going to"), (r"\bgotta\b", "got to"), (r"\bim\b", "i am"), (r"\bdont\b", "do not"),
    (r"\bcant\b", "cannot"), (r"\bwont\b", "will not"), (r"\bdoesnt\b", "does not"), (r"\bdidnt\b", "did not"),
    (r"\bisnt\b", "is not"), (r"\bcan not\b", "cannot"), (r"\bkms\b", "kill myself"),
]
_CONTRACTIONS_RE = [(re.compile(a), b) for a, b in _CONTRACTIONS]
_NON_WORD = re.compile(r"[^a-z0-9' -]+")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, contractions expanded, punctuation → spaces, whitespace collapsed."""
    t = text.lower().replace("’", "'").replace("‘", "'").replace("`", "'")
    for pattern, repl in _CONTRACTIONS_RE:
        t = pattern.sub(repl, t)
    t = _NON_WORD.sub(" ", t).replace("'", "")
    return _SPACES.sub(" ", t).strip()


class SafetyRules(BaseModel):
    """``config/safety.yaml``: regular expressions over :func:`normalise`\\d text."""

    model_config = ConfigDict(extra="forbid")

    idioms: list[str] = Field(description="figures of speech removed before matching")
    categories: dict[Literal["suicide", "self_harm", "abuse", "medical_emergency"], list[str]]
    harmful_requests: list[str]
    unsafe_output: list[str]


@dataclass(frozen=True)
class Verdict:
    """A safety match.

    Attributes:
        category: which rule set matched.
        match: the matched text (normalised), for logs and tests.
    """

    category: Category
    match: str

    @property
    def crisis(self) -> bool:
        return self.category in CRISIS


def load_rules(path: Path) -> SafetyRules:
    """Read and validate a rules file.

    Raises:
        FileNotFoundError: no such file.
        pydantic.ValidationError / re.error: a bad key or an invalid regular expression.
    """
    rules = SafetyRules(**yaml.safe_load(path.read_text()))
    for pattern in [*rules.idioms, *rules.harmful_requests, *rules.unsafe_output,
                    *(p for ps in rules.categories.values() for p in ps)]:
        re.compile(pattern)
    return rules


class SafetyRouter:
    """Classifies user text (:meth:`check_input`) and LLM output (:meth:`check_output`).

    Args:
        rules: the rule sets (see :func:`load_rules`).
    """

    def __init__(self, rules: SafetyRules) -> None:
        self._idioms = [re.compile(p) for p in rules.idioms]
        self._input: list[tuple[Category, re.Pattern[str]]] = [
            (cat, re.compile(p)) for cat, ps in rules.categories.items() for p in ps
        ] + [("harmful_request", re.compile(p)) for p in rules.harmful_requests]
        self._output = [re.compile(p) for p in rules.unsafe_output]

    def check_input(self, text: str) -> Verdict | None:
        """The first crisis or harmful-request rule that matches the user's text, else None."""
        t = normalise(text)
        for idiom in self._idioms:
            t = idiom.sub(" ", t)
        for category, pattern in self._input:
            if m := pattern.search(t):
                return Verdict(category, m.group())
        return None

    def check_output(self, text: str) -> Verdict | None:
        """An ``unsafe_output`` match in the LLM's text (checked per clause before it is spoken), else None."""
        t = normalise(text)
        for pattern in self._output:
            if m := pattern.search(t):
                return Verdict("unsafe_output", m.group())
        return None
