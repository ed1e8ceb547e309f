"""LLM backends behind one protocol: a chat model that streams text deltas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict


class Message(TypedDict):
    """One chat message in the OpenAI/Ollama format."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings for one reply (``config/default.yaml`` → ``llm``)."""

    max_tokens: int
    temperature: float
    top_p: float


class LLMError(RuntimeError):
    """The backend failed: unreachable, model missing, or an error mid-stream."""


class ChatModel(Protocol):
    """A streaming chat model. ``stream`` yields text deltas as they are generated; cancelling the iteration stops
    generation. Raises :class:`LLMError` when the backend fails."""

    name: str

    def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[str]:
        ...

    def warmup(self, messages: list[Message]) -> None:
        """Blocking, at start-up: load the model and process ``messages`` (the system prompt every conversation
        starts with) so the first turn does not pay for them. Must not raise for a backend that is down."""
        ...
