"""Tuning one call while it runs: the settings a researcher may change from the page, validated like the YAML.

A change is a mapping of dotted keys (``"vad.threshold": 0.6``) to values. Each touched section is validated by its
own pydantic model (:mod:`oviya.config`), so a bad value gets the same message as in a YAML file and changes
nothing. A call's :class:`LiveTuning` (``TurnEngine.tuning``) validates each request at once; the engine takes the
result at the call's next user turn and stamps the changes in effect into each turn's record
(``TurnRecord.tuning``); :func:`as_yaml` gives the config snippet that reproduces them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from oviya.brain.emotion import EmotionDetector
from oviya.config import Settings, deep_merge

# What may change during a call (the page's controls); everything else needs a restart.
TUNABLE = (
    "vad.threshold", "vad.min_silence_ms",
    "turn.mode", "turn.silence_ms", "turn.smart_turn.min_silence_ms",
    "backchannel.enabled", "barge_in.min_ms", "brain.reply_emotion", "llm.chain",
)


def nested(changes: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` → ``{"a": {"b": 1}}``."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        *sections, leaf = key.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return out


def value_of(settings: Settings, key: str) -> Any:
    """The value of dotted ``key`` in ``settings`` (``"vad.threshold"`` → ``settings.vad.threshold``)."""
    node: Any = settings
    for part in key.split("."):
        node = getattr(node, part)
    return node


def tuned(settings: Settings, changes: Mapping[str, Any]) -> Settings:
    """``settings`` with ``changes`` (keys from :data:`TUNABLE`) applied; each touched section re-validated.

    Raises:
        ValueError: a key that cannot change during a call, or a value its section refuses (pydantic's
            ``ValidationError`` is a ``ValueError``; its message names the field).
    """
    if bad := sorted(set(changes) - set(TUNABLE)):
        raise ValueError(f"not tunable during a call: {', '.join(bad)} (tunable: {', '.join(TUNABLE)})")
    updates = {}
    for section, values in nested(changes).items():
        current = getattr(settings, section)
        updates[section] = type(current).model_validate(deep_merge(current.model_dump(), values))
    return settings.model_copy(update=updates)


def as_yaml(changes: Mapping[str, Any]) -> str:
    """The config snippet (``config/`` YAML) that gives a fresh call these changes."""
    return yaml.safe_dump(nested(changes), sort_keys=False) if changes else ""


class LiveTuning:
    """One call's live changes to its settings.

    Args:
        base: the call's settings as it started (the changes apply to these).
        smart_turn: the server loaded the Smart Turn model (``turn.mode: smart_turn`` is possible).
        emotion: the emotion detector (its reply labels are the possible ``brain.reply_emotion``).

    Attributes:
        in_effect: the changes the call's current turn runs with (dotted keys; values as validated).
    """

    def __init__(self, base: Settings, smart_turn: bool, emotion: EmotionDetector) -> None:
        self.base, self.smart_turn, self.emotion = base, smart_turn, emotion
        self.in_effect: dict[str, Any] = {}
        self._next: tuple[dict[str, Any], Settings] | None = None

    @property
    def requested(self) -> dict[str, Any]:
        """The changes as last validated: those waiting for the next user turn, else those in effect."""
        return dict(self._next[0] if self._next is not None else self.in_effect)

    def request(self, changes: Mapping[str, Any]) -> None:
        """Ask for ``changes`` (keys of :data:`TUNABLE`) on top of the earlier ones, from the next user turn on; a
        value set back to the call's start is no change any more.

        Raises:
            ValueError: a key not tunable live, a value its settings section refuses, ``turn.mode`` smart_turn
                without the Smart Turn model, a ``brain.reply_emotion`` that is not a reply label, or an
                ``llm.chain`` naming a backend the server did not load. Nothing of the earlier changes is lost.
        """
        pending = {**self.requested, **changes}
        new = tuned(self.base, pending)
        if new.turn.mode == "smart_turn" and not self.smart_turn:
            raise ValueError("turn.mode smart_turn needs the Smart Turn model (this server loaded none)")
        if unloaded := sorted(set(new.llm.chain) - set(self.base.llm.chain)):
            raise ValueError(f"llm.chain: {unloaded} not loaded on this server (loaded: {self.base.llm.chain})")
        self.emotion.check_reply_label(new.brain.reply_emotion)
        validated = {key: value_of(new, key) for key in pending}  # 600.0 → 600
        self._next = ({k: v for k, v in validated.items() if v != value_of(self.base, k)}, new)

    def take(self) -> Settings | None:
        """At a user turn's start: the settings requested since the last one (their changes are now in effect),
        or None when nothing changed."""
        if self._next is None:
            return None
        (self.in_effect, settings), self._next = self._next, None
        return settings
