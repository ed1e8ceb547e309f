"""The thinking step: persona prompt + conversation history → a streamed LLM reply."""

from __future__ import annotations

from collections.abc import AsyncIterator

from oviya.brain.persona import Persona
from oviya.config import BrainSettings
from oviya.llm import ChatModel, GenerationParams, Message


class Brain:
    """Builds the prompt for each user turn and keeps the session's history.

    History holds only what was actually said: the engine calls :meth:`commit` with the words Oviya spoke (after a
    barge-in, just the part that was played).

    Args:
        llm: the chat model.
        persona: who Oviya is.
        settings: ``brain`` section (history length, input limit).
        params: sampling settings.
    """

    def __init__(self, llm: ChatModel, persona: Persona, settings: BrainSettings, params: GenerationParams) -> None:
        self.llm = llm
        self.persona = persona
        self.settings = settings
        self.params = params
        self.history: list[Message] = []

    def messages_for(self, user_text: str) -> list[Message]:
        """System prompt, the last ``history_turns`` exchanges, then the new user message."""
        keep = self.history[len(self.history) - 2 * self.settings.history_turns :] if self.settings.history_turns else []
        return [
            Message(role="system", content=self.persona.system_message()),
            *keep,
            Message(role="user", content=user_text),
        ]

    def stream(self, user_text: str) -> AsyncIterator[str]:
        """Stream the reply's text deltas. Raises :class:`oviya.llm.LLMError` from the backend."""
        return self.llm.stream(self.messages_for(user_text), self.params)

    def commit(self, user_text: str, assistant_text: str) -> None:
        """Record a finished exchange (``assistant_text`` = what was spoken, possibly cut short)."""
        self.history.append(Message(role="user", content=user_text))
        if assistant_text:
            self.history.append(Message(role="assistant", content=assistant_text))
