"""Ollama backend through the official ``ollama`` Python client (streaming ``/api/chat``), with retries and
exponential backoff on connection errors before the first token."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from oviya.config import OllamaSettings
from oviya.llm import GenerationParams, LLMError, Message

log = logging.getLogger(__name__)


class OllamaChat:
    """:class:`oviya.llm.ChatModel` on an Ollama server.

    Args:
        settings: ``llm.ollama`` (host URL, model tag, request timeout in s, retries, first backoff in s).
    """

    def __init__(self, settings: OllamaSettings) -> None:
        import ollama

        self.settings = settings
        self.name = f"ollama:{settings.model}"
        self._client = ollama.AsyncClient(host=settings.host, timeout=settings.timeout_s)

    def warmup(self, messages: list[Message]) -> None:
        """Ask the server to load the model (Ollama loads lazily on the first request); logs if it is down."""
        import ollama

        try:
            ollama.Client(host=self.settings.host, timeout=self.settings.timeout_s).chat(
                model=self.settings.model, messages=list(messages), options={"num_predict": 1}
            )
        except Exception as e:  # noqa: BLE001 - the app starts anyway; turns report the error
            log.warning("ollama warm-up failed at %s: %s", self.settings.host, e)

    async def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[str]:
        import asyncio

        import httpx
        import ollama

        options = {"num_predict": params.max_tokens, "temperature": params.temperature, "top_p": params.top_p}
        for attempt in range(self.settings.retries + 1):
            started = False
            try:
                response = await self._client.chat(
                    model=self.settings.model, messages=list(messages), stream=True, options=options
                )
                async for part in response:
                    if part.message.content:
                        started = True
                        yield part.message.content
                return
            except (httpx.ConnectError, ConnectionError) as e:
                # A server that is restarting refuses connections for a moment: retry, but never after the reply
                # has begun (the words already spoken cannot be taken back).
                if started or attempt == self.settings.retries:
                    raise LLMError(f"ollama at {self.settings.host}: {e}") from e
                await asyncio.sleep(self.settings.backoff_s * 2**attempt)
            except (ollama.ResponseError, httpx.HTTPError) as e:
                raise LLMError(f"ollama at {self.settings.host}: {e}") from e
