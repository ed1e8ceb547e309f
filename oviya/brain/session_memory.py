"""One conversation's memory of its caller: their notes from earlier sessions in, this session's notes out, and the
prompt-prefix warm-up that follows any change of what the system prompt holds."""

from __future__ import annotations

import asyncio

from oviya.brain.brain import Brain
from oviya.brain.memory import UserMemory, summarise
from oviya.config import MemorySettings
from oviya.llm import GenerationParams
from oviya.llm.fallback import FallbackChat
from oviya.tasks import NamedTasks


class CallerMemory:
    """The caller's notes for one conversation (no-op until :meth:`set_key`).

    Args:
        brain: the session's brain (its ``user_summary`` and prompt prefix).
        llm: the chat models that condense the session into notes (asked with ``memory.summary_timeout_s`` of
            patience: a summary waits its turn behind other calls' replies on a shared model).
        settings: ``memory`` section (store dir, note sizes, load and summary timeouts).
        tasks: the conversation's tasks (``memory_load``, ``warm``).

    Attributes:
        key: the caller's memory key (a server-issued token), or None.
    """

    def __init__(self, brain: Brain, llm: FallbackChat, settings: MemorySettings, tasks: NamedTasks) -> None:
        self.brain = brain
        self.llm = llm
        self.settings = settings
        self.tasks = tasks
        self.store = UserMemory(settings.dir, settings.summary_max_chars)
        self.key: str | None = None
        self._saved_at = 0  # history length at the last save

    def set_key(self, key: str) -> None:
        """Remember this caller across sessions: their saved notes are loaded now (within
        ``memory.load_timeout_ms``, never delaying a reply) and updated when the session closes.

        Raises:
            ValueError: an empty key or one longer than 200 characters.
        """
        key = key.strip()
        if not key or len(key) > 200:
            raise ValueError("memory_key must be 1-200 characters")
        if key == self.key:
            return
        self.key = key

        async def load() -> None:
            self.brain.user_summary = await self.store.load_capped(key, self.settings.load_timeout_ms / 1000)
            self.rewarm()

        self.tasks.start("memory_load", load())

    def rewarm(self) -> None:
        """Recompute the prompt prefix (persona, display name, notes) in the LLM's cache in the background, so the
        next reply's first token does not wait for it (a 1.5B model on 2 cores takes ~16 ms per prompt token).
        Call it after any of them changed; a newer call replaces an unfinished one; none after the call closed."""
        if not self.tasks.closed:
            self.tasks.start("warm", asyncio.to_thread(self.brain.warm))

    async def save(self) -> str | None:
        """Condense this session into the caller's notes and save them (no-op without a key or with nothing new
        since the last save). Returns them (an LLM summary: may take seconds)."""
        if self.key is None or len(self.brain.history) == self._saved_at:
            return None
        self._saved_at = len(self.brain.history)
        m = self.settings
        params = GenerationParams(m.summary_max_tokens, 0.0, 1.0)
        llm = self.llm.patient(m.summary_timeout_s)
        notes = await summarise(llm, self.brain.history, self.brain.user_summary, params, m.summary_timeout_s)
        if notes:
            await asyncio.to_thread(self.store.save, self.key, notes)
            self.brain.user_summary = notes
        return notes
