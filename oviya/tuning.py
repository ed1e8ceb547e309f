"""Tuning one call while it runs: the settings a researcher may change from the page, validated like the YAML.

A change is a mapping of dotted keys (``"vad.threshold": 0.6``) to values. Each touched section is validated by its
own pydantic model (:mod:`oviya.config`), so a bad value gets the same message as in a YAML file and changes
nothing. The engine applies the result from the call's next user turn on (:meth:`oviya.engine.TurnEngine.tune`) and
stamps the changes in effect into each turn's record (``TurnRecord.tuning``); :func:`as_yaml` gives the config
snippet that reproduces them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from oviya.config import Settings

# What may change during a call (the page's controls); everything else needs a restart.
TUNABLE = (
    "vad.threshold", "vad.min_silence_ms",
    "turn.mode", "turn.silence_ms", "turn.smart_turn.min_silence_ms",
    "backchannel.enabled", "barge_in.min_ms", "brain.reply_emotion",
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


def _merged(base: dict, update: dict) -> dict:
    return {**base, **{k: _merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                       for k, v in update.items()}}


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
        updates[section] = type(current).model_validate(_merged(current.model_dump(), values))
    return settings.model_copy(update=updates)


def as_yaml(changes: Mapping[str, Any]) -> str:
    """The config snippet (``config/`` YAML) that gives a fresh call these changes."""
    return yaml.safe_dump(nested(changes), sort_keys=False) if changes else ""
