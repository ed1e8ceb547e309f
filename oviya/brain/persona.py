"""Personas: who Oviya is, loaded from ``config/personas/<name>.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from oviya.brain.identity import Question
from oviya.brain.safety import Category
from oviya.config import CONFIG_DIR


class Persona(BaseModel):
    """A persona file.

    Attributes:
        name: the assistant's name, used in the prompt.
        system_prompt: who the assistant is.
        facts: what the assistant truly is (an AI, who made it, what it does not have), appended to the system
            prompt so the model never invents a job, a family or a home.
        identity_replies: the fixed, truthful answer to each identity question (:mod:`oviya.brain.identity`).
        style_rules: rules for spoken replies, appended to the system prompt as one paragraph.
        greeting: a first line the UI may speak.
        default_emotion: the reply emotion when the user's words give no cue (an ``emotion.yaml`` reply label).
        safety_replies: what to say, per safety category, instead of the LLM's reply.
        crisis_followup: what the LLM is told, beside the user's words, for ``brain.crisis_followup_turns`` turns after
            a crisis turn: it stays with the person on it (an escalation the router misses alone, "I'm going to take
            them now", still gets the crisis line; a "thank you, I'll call them" gets a warm word, not the script).
        fallback_line: what to say when every LLM backend failed.
        not_heard_line: what to say when speech recognition failed on the user's turn.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    system_prompt: str = Field(min_length=1)
    facts: list[str]
    identity_replies: dict[Question, str]
    style_rules: list[str]
    greeting: str
    default_emotion: str
    safety_replies: dict[Category, str]
    crisis_followup: str = Field(min_length=1)
    fallback_line: str = Field(min_length=1)
    not_heard_line: str = Field(min_length=1)

    @model_validator(mode="after")
    def _every_category(self) -> Persona:
        if missing := set(get_args(Category)) - set(self.safety_replies):
            raise ValueError(f"safety_replies lacks {sorted(missing)}")
        if missing := set(get_args(Question)) - set(self.identity_replies):
            raise ValueError(f"identity_replies lacks {sorted(missing)}")
        return self

    def system_message(self) -> str:
        """The full system prompt: who, the facts, then the style rules."""
        return "\n".join((self.system_prompt.strip(), " ".join(f.strip() for f in self.facts),
                          " ".join(r.strip() for r in self.style_rules)))


def list_personas(config_dir: Path = CONFIG_DIR) -> list[str]:
    """Names of the persona files in ``config/personas/``, sorted."""
    return sorted(p.stem for p in (config_dir / "personas").glob("*.yaml"))


def load_persona(name: str, config_dir: Path = CONFIG_DIR) -> Persona:
    """Read ``config/personas/<name>.yaml``. Only names of existing files are accepted (never a path).

    Raises:
        FileNotFoundError: no such persona (the message lists the known ones).
        pydantic.ValidationError: a field is missing or of the wrong type.
    """
    known = list_personas(config_dir)
    if name not in known:
        raise FileNotFoundError(f"unknown persona {name!r} (known: {', '.join(known)})")
    path = config_dir / "personas" / f"{name}.yaml"
    return Persona(**yaml.safe_load(path.read_text()))
