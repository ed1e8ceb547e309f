"""Safety router: crisis and harmful-request detection before the LLM, and an unsafe-output check after it.

Two layers. Rules first: a crisis stated explicitly must be caught every time (recall over cleverness), the rules
are readable and editable in ``config/safety.yaml``, and they cost microseconds. Figures of speech ("this joke is
killing me") clear only the match they run through. Then a semantic layer (:mod:`oviya.brain.semantic_safety`: sentence
embeddings and a trained head) for indirect statements no rule names: burden, goodbyes, plans and means, places.
Measured by ``python -m eval safety`` (recall per kind, false-positive rate, cross-validated figures for the head on
``tests/data/safety.jsonl``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from oviya.brain.clauses import sentences
from oviya.brain.encoder_tuning import TuningConfig
from oviya.brain.semantic_safety import SemanticSafety

Category = Literal["suicide", "self_harm", "abuse", "medical_emergency", "harmful_request", "unsafe_output"]
CRISIS: tuple[Category, ...] = ("suicide", "self_harm", "abuse", "medical_emergency")

# how people write or speak words the rules name in one form: contractions, spoken forms, slang
_SPOKEN_FORMS = [
    (r"\bcan'?t\b", "cannot"), (r"\bwon'?t\b", "will not"), (r"\b(\w+)n't\b", r"\1 not"), (r"\bi'?m\b", "i am"),
    (r"'re\b", " are"), (r"'ve\b", " have"), (r"'ll\b", " will"), (r"'d\b", " would"), (r"\bwanna\b", "want to"),
    (r"\bgonna\b", "going to"), (r"\bgotta\b", "got to"), (r"\bim\b", "i am"), (r"\bdont\b", "do not"),
    (r"\bcant\b", "cannot"), (r"\bwont\b", "will not"), (r"\bdoesnt\b", "does not"), (r"\bdidnt\b", "did not"),
    (r"\bisnt\b", "is not"), (r"\bcan not\b", "cannot"),
    # slang and algospeak (words people use to get past platform filters), read as the words they stand for; "kms"
    # after a number is kilometres
    (r"(?<![0-9])(?<![0-9] )\bkms\b", "kill myself"), (r"\bunalive\b", "kill"), (r"\bunaliv(ed|ing)\b", r"kill\1"),
    (r"\bsewer ?slide\b", "suicide"), (r"\bself[- ]?delete\b", "kill myself"), (r"\bself[- ]?deleting\b", "killing myself"),
    (r"\b(no cap|deadass)\b", "for real"),  # "no lie", "seriously": an earnest marker
]
_SPOKEN_FORMS_RE = [(re.compile(a), b) for a, b in _SPOKEN_FORMS]
# where a trigger's scope ends (ConText's termination terms), and where the speaker starts a clause of their own ("my
# friend attempted suicide | and now i want to try too")
_CLAUSE_CUT = re.compile(r"[,;:]\s+|\s+[–—-]\s+|\s+(?=(?:but|however|though|although|yet|whereas|except)\b)"
                         r"|\s+(?=(?:and|so)\s+(?:now\s+|then\s+)?(?:i|i'm|im|i've|i'd)\b)", re.IGNORECASE)
# a match that holds one of these is the speaker's own, whoever is named before it
_FIRST_PERSON = re.compile(r"\b(i|me|my|myself|mine)\b")
# crises that, told of someone else, are not the speaker's (abuse and emergencies of others are crises)
_OWN_ONLY: tuple[Category, ...] = ("suicide", "self_harm")
_NON_WORD = re.compile(r"[^a-z0-9' -]+")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, contractions and slang expanded, punctuation → spaces, whitespace collapsed."""
    t = text.lower().replace("’", "'").replace("‘", "'").replace("`", "'")
    for pattern, repl in _SPOKEN_FORMS_RE:
        t = pattern.sub(repl, t)
    t = _NON_WORD.sub(" ", t).replace("'", "")
    return _SPACES.sub(" ", t).strip()


class SemanticConfig(BaseModel):
    """``semantic`` section of ``config/safety.yaml``: the embedding head (:mod:`oviya.brain.semantic_safety`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool
    threshold: float = Field(gt=0, lt=1, description="P(crisis) at or above which a turn is a crisis")
    context_threshold: float = Field(ge=0, lt=1, description="P(crisis) of a turn alone at or above which it is "
                                     "judged again together with the user's previous turn")
    rule_veto_below: float = Field(0.0, ge=0, lt=1, description="a crisis rule's match is cleared when the head's "
                                   "P(crisis) of the turn is below this (a mention, not a statement: the past, a "
                                   "question, someone else, a story); 0 = rules are final")
    sentence_threshold: float = Field(gt=0, le=1, description="P(crisis) at or above which one sentence of a "
                                      "turn of several, read alone, flags the turn (a sentence out of its turn "
                                      "reads as a crisis more often than the turn)")
    max_sentences: int = Field(ge=1, le=16, description="a turn of several sentences is also scored sentence by "
                               "sentence, in at most this many runs of adjacent sentences (each costs an embedding)")
    tuning: TuningConfig


class SafetyRules(BaseModel):
    """``config/safety.yaml``: regular expressions over :func:`normalise`\\d text, and the semantic layer."""

    model_config = ConfigDict(extra="forbid")

    idioms: list[str] = Field(description="figures of speech: clear a crisis match only when they run through its end")
    earnest: list[str] = Field(description="phrases that mark a statement as meant: idioms clear nothing then")
    negations: list[str] = Field(description="denial triggers, matched against the text just before a crisis "
                                 "match (anchored with $): a match right after one is denied, not stated")
    historical: list[str] = Field(description="past-time triggers, matched as ``negations`` are: a match right "
                                  "after one is told as the past, and counts as a denied one")
    historical_after: list[str] = Field(description="past-time triggers matched at a crisis match's end ('a few "
                                        "years ago'): the match counts as a denied one")
    other_experiencer: list[str] = Field(description="third-person triggers, matched as ``negations`` are: a "
                                         "suicide or self-harm match right after one is told of someone else, and "
                                         "counts as a denied one")
    third_person: list[str] = Field(description="suicide and self-harm said in the third person ('he wants to "
                                    "kill himself'): right after an ``other_experiencer`` trigger, its clause is "
                                    "left out of what the head reads")
    reversals: list[str] = Field(description="words after a denied match that undo the denial ('until now'): "
                                 "the match counts")
    past: list[str] = Field(description="the past tense, searched in the 60 characters before a crisis match and "
                            "the match itself: with a ``resolved`` cue after it, the match counts as a denied one")
    recent: list[str] = Field(description="times matched in the 40 characters after a ``past`` match ('last "
                              "night'): a crisis this recent is not over, whatever follows")
    resolved: list[str] = Field(description="a past crisis said to be over ('those thoughts are gone'), searched "
                                "in the turn after a ``past`` match; left out of what the head reads once a clause "
                                "was denied")
    retracted: list[str] = Field(description="a statement taken back as a joke ('just kidding'), searched in the "
                                 "turn after a crisis match: the match counts as a denied one, unless the turn is "
                                 "earnest")
    categories: dict[Literal["suicide", "self_harm", "abuse", "medical_emergency"], list[str]]
    harmful_requests: list[str]
    unsafe_output: list[str]
    semantic: SemanticConfig


@dataclass(frozen=True)
class Verdict:
    """A safety match.

    Attributes:
        category: which rule set matched.
        match: the matched text (normalised) for a rule, or ``semantic p=0.93`` for the embedding head.
        source: ``rules`` or ``semantic``.
    """

    category: Category
    match: str
    source: Literal["rules", "semantic"] = "rules"

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
    triggers = [*rules.negations, *rules.historical, *rules.historical_after, *rules.other_experiencer,
                *rules.third_person, *rules.reversals, *rules.past, *rules.recent, *rules.resolved,
                *rules.retracted]
    for pattern in [*rules.idioms, *rules.earnest, *triggers, *rules.harmful_requests, *rules.unsafe_output,
                    *(p for ps in rules.categories.values() for p in ps)]:
        re.compile(pattern)
    return rules


class SafetyRouter:
    """Classifies user text (:meth:`check_input`) and LLM output (:meth:`check_output`).

    Crisis rules run on the whole normalised text; a figure of speech clears a match only when its own match runs
    through the match's last words, the ones that made it a crisis ("is killing me" in "this joke is killing me",
    "die on this hill" in "ready to die on this hill"), and never in a turn with an earnest marker ("I mean it"), so
    an idiom can no longer erase a real statement beside it. A match right after a denial or past-time trigger ("I'm
    not going to hurt myself", "I haven't thought about self-harm in months", "I used to self-harm") does not count,
    and the head judges the turn without the clauses so denied (NegEx, ConText). A crisis rule's match stands unless
    the semantic head reads the turn as a mere mention (P(crisis) below ``semantic.rule_veto_below``, both as written
    and as the rules read it, and each matched sentence alone: "How do I help someone having a seizure?"). What no
    rule matches is scored by the semantic head, alone and, when it does not flag the turn alone (and the turn
    reaches ``context_threshold``), together with the user's previous turn; a turn of several sentences also sentence
    by sentence ("Tell me a joke. I want to die."), the highest score counting — a sentence alone only from
    ``sentence_threshold`` (out of its turn a sentence reads as a crisis more often; config/safety.yaml). Of a turn
    whose every match a figure of speech explains, the head reads the sentences none explains.

    Args:
        rules: the rule sets (see :func:`load_rules`).
        semantic: the embedding head; None: rules only.
    """

    def __init__(self, rules: SafetyRules, semantic: SemanticSafety | None = None) -> None:
        self._idioms = [re.compile(p) for p in rules.idioms]
        self._earnest = [re.compile(p) for p in rules.earnest]
        self._negations = [re.compile(p) for p in [*rules.negations, *rules.historical]]
        self._historical_after = [re.compile(p) for p in rules.historical_after]
        self._negations_or_others = [*self._negations, *(re.compile(p) for p in rules.other_experiencer)]
        self._third_person = [re.compile(p) for p in rules.third_person]
        self._reversals = [re.compile(p) for p in rules.reversals]
        self._past = [re.compile(p) for p in rules.past]
        self._resolved = [re.compile(p) for p in rules.resolved]
        self._recent = [re.compile(p) for p in rules.recent]
        self._retracted = [re.compile(p) for p in rules.retracted]
        self._crisis: list[tuple[Category, re.Pattern[str]]] = [
            (cat, re.compile(p)) for cat, ps in rules.categories.items() for p in ps
        ]
        self._harmful = [re.compile(p) for p in rules.harmful_requests]
        self._output = [re.compile(p) for p in rules.unsafe_output]
        self.semantic = semantic if rules.semantic.enabled else None
        self.config = rules.semantic

    def check_rules(self, text: str) -> Verdict | Literal["explained"] | None:
        """The first crisis rule match no idiom explains and no denial precedes, else the first harmful-request
        match; ``explained`` when crisis rules matched and idioms explained every match (the semantic layer then reads
        only the sentences no idiom explains); else None. Normalising drops full stops, so an explained turn is read
        again sentence by sentence: an idiom must not run across one ("I wish I was dead. On the roof fixing the
        gutter.")."""
        verdict = self._rules(normalise(text))
        if verdict == "explained" and len(parts := sentences(text)) > 1:
            for i, part in enumerate(parts):
                if isinstance(v := self._rules(normalise(part), normalise(" ".join(parts[i + 1 :]))), Verdict):
                    return v
        return verdict

    def _rules(self, t: str, later: str = "") -> Verdict | Literal["explained"] | None:
        """:meth:`check_rules` of normalised ``t``, followed in the turn by normalised ``later``."""
        earnest = self._earnest_in(t)
        spans = [] if earnest else [m.span() for p in self._idioms for m in p.finditer(t)]
        explained = False
        for category, pattern in self._crisis:
            for m in pattern.finditer(t):
                if self._denied(t, m, category in _OWN_ONLY, later):  # "i do not want to kill myself": the head's
                    continue
                if not any(a < m.end() <= b for a, b in spans):  # an idiom runs through the match's last words
                    return Verdict(category, m.group())
                explained = True
        for pattern in self._harmful:
            if m := pattern.search(t):
                return Verdict("harmful_request", m.group())
        return "explained" if explained else None

    def _earnest_in(self, t: str) -> bool:
        return any(p.search(t) for p in self._earnest)

    def _denied(self, t: str, m: re.Match[str], others: bool, later: str = "") -> bool:
        """A denial or past-time trigger (``negations``, ``historical``; with ``others``, for suicide and self-harm,
        also ``other_experiencer``, unless the match names the speaker: "she died and i want to be with her") ends
        where the match ``m`` in normalised ``t`` begins (the 60 characters before it are searched; NegEx's window is
        a few words) or one of ``historical_after`` begins where it ends, or the match is told in the past tense
        (``past``, and not ``recent``) and said to be over after it, in ``t`` or in the normalised text that follows
        ``t`` in the turn (``later``; ``resolved``: "i attempted suicide in 2015. i am in a much better place now"),
        or taken back as a joke after it (``retracted``: "ha, just kidding") in a turn that is not earnest; and no
        reversal follows it in the 60 characters after it."""
        start, end = m.span()
        others = others and not _FIRST_PERSON.search(m.group())
        before = self._negations_or_others if others else self._negations
        return ((any(p.search(t, max(0, start - 60), start) for p in before)
                 or any(p.match(t, end, end + 60) for p in self._historical_after)
                 or (any(p.search(t, max(0, start - 60), end) for p in self._past)
                     and not any(p.match(t, end, end + 40) for p in self._recent)
                     and self._said_after(self._resolved, t, end, later))
                 or (self._said_after(self._retracted, t, end, later) and not self._earnest_in(f"{t} {later}")))
                and not any(p.search(t, end, end + 60) for p in self._reversals))

    @staticmethod
    def _said_after(patterns: list[re.Pattern[str]], t: str, end: int, later: str) -> bool:
        """One of ``patterns`` in normalised ``t`` from ``end`` on, or in ``later`` (the turn after ``t``)."""
        return any(p.search(s) for s in (t[end:], later) for p in patterns)

    def _without_denied(self, text: str) -> str:
        """``text`` without its clauses that hold a denied crisis match ("I'm not suicidal, just worn out" → "just
        worn out"; "" when nothing else is said), else ``text`` itself: a clause is a sentence's part between commas,
        semicolons, colons, dashes and contrast words ("but", "however"), where ConText ends a trigger's scope. Once a
        clause is left out, so are the clauses that say a crisis is over (``resolved``): the head reads "those
        thoughts are completely gone" as the thoughts."""
        clauses = [c for s in sentences(text) for c in _CLAUSE_CUT.split(s) if c.strip()]
        normalised = [normalise(c) for c in clauses]
        kept = [(c, t) for i, (c, t) in enumerate(zip(clauses, normalised))
                if not self._is_denial(t, " ".join(normalised[i + 1 :]))]
        if len(kept) == len(clauses):
            return text
        return " ".join(c for c, t in kept if not any(p.search(t) for p in self._resolved))

    def _is_denial(self, t: str, later: str) -> bool:
        """A crisis match in normalised clause ``t`` (the turn's normalised text after it: ``later``) is denied, or a
        crisis is told of someone else (``third_person``), and none is stated."""
        denied = (any(self._denied(t, m, category in _OWN_ONLY, later) for category, p in self._crisis
                      for m in p.finditer(t))
                  or any(self._denied(t, m, True, later) for p in self._third_person for m in p.finditer(t)))
        return denied and not isinstance(self._rules(t, later), Verdict)

    def _semantic(self, text: str, by_sentence: bool = True) -> tuple[float, str]:
        """The head's (P(crisis), category) of ``text``; with ``by_sentence``, of a turn of several sentences the
        highest of the whole and of each sentence alone (``_units``) that reaches ``sentence_threshold``."""
        return self._best(self._score(self._units(text, by_sentence)))

    def _best(self, scores: list[tuple[float, str]]) -> tuple[float, str]:
        """The highest of the whole text's score (first) and of its sentences' (after it) that reach
        ``sentence_threshold``."""
        return max([scores[0], *(s for s in scores[1:] if s[0] >= self.config.sentence_threshold)],
                   key=lambda s: s[0])

    def _units(self, text: str, by_sentence: bool = True) -> list[str]:
        """The texts ``text`` is scored as: itself and, with ``by_sentence`` and several sentences, each sentence (runs
        of adjacent ones past ``max_sentences``): one sentence of crisis in a longer turn is otherwise averaged away by
        the everyday ones beside it, or cut off past the encoders' 128 tokens."""
        units = [text]
        if by_sentence and len(parts := sentences(text)) > 1:
            size = math.ceil(len(parts) / self.config.max_sentences)  # runs of adjacent sentences bound the cost
            units += [" ".join(parts[i : i + size]) for i in range(0, len(parts), size)]
        return units

    def _score(self, texts: list[str]) -> list[tuple[float, str]]:
        assert self.semantic is not None
        return self.semantic.score(texts)

    def check_input(self, text: str, previous: str | None = None) -> Verdict | None:
        """A crisis or harmful request in the user's turn ``text`` (``previous``: their turn before it), else None.

        Blocking: the semantic head embeds with MPNet and MiniLM, in one batch, the turn, each sentence of a turn of
        several and, with ``previous``, the pair; the previous turn is judged alone too (its embeddings are cached
        from its own check). ``eval safety`` (lines alone): p50 50 ms, p95 122 ms per line on 2 cores; 1 / 3 / 9
        texts at once: 46 / 74 / 172 ms.
        """
        verdict = self.check_rules(text)
        if self.semantic is None:
            return None if verdict == "explained" else verdict
        if verdict == "explained" and not (text := self._unexplained(text)):
            return None
        if isinstance(verdict, Verdict):
            return None if verdict.crisis and self._reads_as_mention(text) else verdict
        if not (text := self._without_denied(text)):
            return None  # nothing but denials: "I'm not thinking about suicide anymore."
        units = self._units(text)
        both = f"{previous} {text}" if previous else None
        # the pair (one text: by sentence, a crisis said in the previous turn would flag any reply to it) is embedded
        # in the same batch as the turn, cheaper than a second pass, since nearly every turn is judged with it
        scores = self._score(units + [both] if both else units)
        p, category = self._best(scores[: len(units)])
        ongoing = self._crisis_category(previous) if previous else None
        if p < self.config.threshold and both:
            # judged together when this turn alone is not flagged: the head ("I have all my pills on the table." then
            # "I'm going to take them now."), and the rules unless the previous turn was a crisis alone (a place in
            # one turn, the act in the next; after a crisis turn its own words would match whatever follows).
            paired = None if ongoing else self.check_rules(both)
            if isinstance(paired, Verdict) and paired.crisis:
                return paired
            if paired is None and p >= self.config.context_threshold:
                p, category = scores[-1]
        if p >= self.config.threshold:
            # right after a crisis turn, the head's category for this turn is a guess; the crisis named in the
            # previous turn goes on, and its resources are the ones to give again
            return Verdict(ongoing or category, f"semantic p={p:.2f}", "semantic")  # type: ignore[arg-type]
        return None

    def _unexplained(self, text: str) -> str:
        """The sentences of an explained turn (:meth:`check_rules`) that no idiom explains, for the head to read: a
        mention or a figure of speech must not hide what the turn says beside it ("I need suicide statistics for
        class. Standing on the edge of the roof right now."); "" when every one is explained."""
        return " ".join(part for part in sentences(text) if self.check_rules(part) != "explained")

    def _reads_as_mention(self, text: str) -> bool:
        """The head's P(crisis) is below ``rule_veto_below`` for the turn as written and as the rules read it (slang
        expanded: "im gonna kms"): the past, a question, someone else, a story; in a turn of several sentences, also
        for each sentence a crisis rule matches, alone, so everyday talk beside a statement cannot make it read as a
        mention ("Tell me a joke. I want to die.": the head reads that whole at 0.00; "I cut myself last night. We
        watched a film." read with the sentence after it, too). A mention told over two sentences, the matched one
        reading as a statement alone, is therefore flagged: a missed statement costs more than a safe reply too
        many. Each reading is embedded only when the ones before it are below. A turn with an earnest marker ("I
        mean it", "no cap") is a statement, never a mention."""
        veto, normalised = self.config.rule_veto_below, normalise(text)
        if veto <= 0 or self._earnest_in(normalised):
            return False
        if any(self._semantic(t, by_sentence=False)[0] >= veto for t in (text, normalised)):
            return False
        parts = sentences(text)
        matched = [part for part in parts
                   if len(parts) > 1 and isinstance(v := self.check_rules(part), Verdict) and v.crisis]
        return all(self._semantic(part, by_sentence=False)[0] < veto for part in matched)

    def _crisis_category(self, text: str) -> str | None:
        """The crisis category of ``text`` judged alone (rules, then the head), else None."""
        verdict = self.check_rules(text)
        if isinstance(verdict, Verdict):
            return verdict.category if verdict.crisis else None
        if verdict == "explained" and not (text := self._unexplained(text)):
            return None
        if not (text := self._without_denied(text)):
            return None
        p, category = self._semantic(text)
        return category if p >= self.config.threshold else None

    def check_output(self, text: str) -> Verdict | None:
        """An ``unsafe_output`` match in the LLM's text (checked per clause before it is spoken), else None."""
        t = normalise(text)
        for pattern in self._output:
            if m := pattern.search(t):
                return Verdict("unsafe_output", m.group())
        return None
