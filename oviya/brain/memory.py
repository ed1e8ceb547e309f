"""Memory: the session's history within a token budget, and a short per-user summary kept on disk.

- Session: the oldest exchanges are dropped until the prompt fits ``memory.history_budget_tokens``. Tokens are
  estimated at 4 characters each (OpenAI's rule of thumb for English), so the budget works for every backend.
- User (by ``memory_key``): at the end of a session the LLM condenses what it learned about the user, together with
  the previous summary, into a few sentences saved as JSON under ``memory.dir`` (file name = sha256 of the key, so a
  key can never name a path). The next session with the same key reads it (time-capped: a slow disk never delays a
  reply) and the brain adds it to the system prompt as quoted data.
- The server's memory keys are :class:`MemoryTokens`: secrets it issues and signs, never names a client chooses, so
  knowing someone's name gives no access to their notes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from pathlib import Path

from oviya.llm import ChatModel, GenerationParams, Message

log = logging.getLogger(__name__)
CHARS_PER_TOKEN = 4
SUMMARY_PROMPT = (
    "Below is a conversation between a user and you, their voice companion{previous}. In at most three short "
    "sentences, write down what to remember about the user for next time: their name, what matters to them, their "
    "plans and feelings. Write only the notes."
)


def estimate_tokens(text: str) -> int:
    """Rough token count of English text (4 characters per token)."""
    return max(1, len(text) // CHARS_PER_TOKEN)


def trim_history(history: list[Message], budget_tokens: int) -> list[Message]:
    """The most recent messages of ``history`` whose estimated tokens fit ``budget_tokens`` (whole user+assistant
    exchanges are kept or dropped together: the list always starts with a user message)."""
    kept: list[Message] = []
    used = 0
    for msg in reversed(history):
        used += estimate_tokens(msg["content"])
        if used > budget_tokens:
            break
        kept.append(msg)
    kept.reverse()
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return kept


class UserMemory:
    """Per-user summaries on disk.

    Args:
        directory: where summary files live (created on first save).
        max_chars: a summary is cut to this length.
    """

    def __init__(self, directory: Path, max_chars: int) -> None:
        self.directory = Path(directory).expanduser()
        self.max_chars = max_chars

    def _path(self, key: str) -> Path:
        return self.directory / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")

    def load(self, key: str) -> str | None:
        """The saved summary for ``key``, or None (none yet, or an unreadable file, which is logged)."""
        try:
            return json.loads(self._path(key).read_text())["summary"] or None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("user memory for a key unreadable: %s", e)
            return None

    async def load_capped(self, key: str, timeout_s: float) -> str | None:
        """:meth:`load` in a worker thread, given up after ``timeout_s`` (returns None)."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.load, key), timeout_s)
        except TimeoutError:
            log.warning("user memory not loaded within %.0f ms; going on without it", timeout_s * 1000)
            return None

    def save(self, key: str, summary: str) -> None:
        """Write atomically (temporary file + rename): a crash never leaves half a file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"summary": summary[: self.max_chars], "updated": time.time()}))
        tmp.replace(path)


async def summarise(llm: ChatModel, history: list[Message], previous: str | None, params: GenerationParams,
                    timeout_s: float) -> str | None:
    """Notes about the user from ``history`` (and the ``previous`` notes), by the LLM; None on failure or timeout."""
    if not any(m["role"] == "user" for m in history):
        return previous
    lines = "\n".join(f"{m['role']}: {m['content']}" for m in history)
    prompt = SUMMARY_PROMPT.format(previous=f", and your earlier notes: {previous}" if previous else "")
    messages = [Message(role="system", content=prompt), Message(role="user", content=lines)]

    async def run() -> str:
        return "".join([d async for d in llm.stream(messages, params)]).strip()

    try:
        return await asyncio.wait_for(run(), timeout_s) or previous
    except Exception as e:  # noqa: BLE001 - a lost summary must never break closing a session
        log.warning("session summary failed: %s", e)
        return previous


class MemoryTokens:
    """Issues and checks memory tokens: ``<random>.<HMAC-SHA256 of it>``, signed with a key kept in
    ``<memory.dir>/.token_key`` (created on first use, mode 0600), so tokens stay valid across restarts and only this
    server's tokens open a memory.

    Args:
        directory: ``memory.dir``.
    """

    RANDOM_BYTES = 24  # 192 bits: not guessable
    _SIG_CHARS = 32

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).expanduser()
        self._key: bytes | None = None

    def _signing_key(self) -> bytes:
        if self._key is None:
            path = self.directory / ".token_key"
            self.directory.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                self._key = path.read_bytes()
            else:
                key = secrets.token_bytes(32)
                with os.fdopen(fd, "wb") as f:
                    f.write(key)
                self._key = key
        return self._key

    def _sign(self, random_part: str) -> str:
        return hmac.new(self._signing_key(), random_part.encode(), hashlib.sha256).hexdigest()[: self._SIG_CHARS]

    def issue(self) -> str:
        """A new token (URL-safe, 65 characters)."""
        random_part = secrets.token_urlsafe(self.RANDOM_BYTES)
        return f"{random_part}.{self._sign(random_part)}"

    def valid(self, token: object) -> bool:
        """True for a token this server issued (compared in constant time)."""
        if not isinstance(token, str) or len(token) > 128 or token.count(".") != 1:
            return False
        random_part, signature = token.split(".")
        return hmac.compare_digest(signature.encode(), self._sign(random_part).encode())
