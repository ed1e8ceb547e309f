"""Personas: who Oviya is, loaded from ``config/personas/<name>.yaml``."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from oviya.config import CONFIG_DIR


class Persona(BaseModel):
    """A persona file.

    Attributes:
        name: the assistant's name, used in the prompt.
        system_prompt: who the assistant is.
        style_rules: rules for spoken replies, appended to the system prompt as one paragraph.
        greeting: a first line the UI may speak.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    system_prompt: str = Field(min_length=1)
    style_rules: list[str]
    greeting: str

    def system_message(self) -> str:
        """The full system prompt: identity, then the style rules."""
        return self.system_prompt.strip() + "\n" + " ".join(r.strip() for r in self.style_rules)


def load_persona(name: str, config_dir: Path = CONFIG_DIR) -> Persona:
    """Read ``config/personas/<name>.yaml``.

    Raises:
        FileNotFoundError: no such persona (the message lists the known ones).
        pydantic.ValidationError: a field is missing or of the wrong type.
    """
    path = config_dir / "personas" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (config_dir / "personas").glob("*.yaml"))
        raise FileNotFoundError(f"unknown persona '{name}' (known: {', '.join(known)})")
    return Persona(**yaml.safe_load(path.read_text()))
