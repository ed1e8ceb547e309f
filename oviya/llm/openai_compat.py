"""OpenAI-compatible chat endpoint (vLLM, llama.cpp server, LM Studio, …) through the official ``openai`` client
(streaming ``POST /v1/chat/completions``)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator

from oviya.config import OpenAISettings
from oviya.llm import GenerationParams, LLMError, Message

log = logging.getLogger(__name__)


class OpenAICompatChat:
    """:class:`oviya.llm.ChatModel` on an OpenAI-compatible server.

    Args:
        settings: ``llm.openai`` (base URL, model name, name of the env variable holding the API key, timeout in s).
    """

    def __init__(self, settings: OpenAISettings) -> None:
        import openai

        self.settings = settings
        self.name = f"openai:{settings.model}@{settings.base_url}"
        # Local servers ignore the key, but the client insists on one.
        key = os.environ.get(settings.api_key_env) or "none"
        self._client = openai.AsyncOpenAI(base_url=settings.base_url, api_key=key, timeout=settings.timeout_s,
                                          max_retries=0)

    def warmup(self, messages: list[Message]) -> None:
        """Nothing to load in-process; the server keeps its own model warm."""

    async def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[str]:
        import openai

        try:
            response = await self._client.chat.completions.create(
                model=self.settings.model, messages=list(messages), stream=True, max_tokens=params.max_tokens,
                temperature=params.temperature, top_p=params.top_p,
            )
            async for chunk in response:
                if chunk.choices and (delta := chunk.choices[0].delta.content):
                    yield delta
        except openai.OpenAIError as e:
            raise LLMError(f"openai-compatible endpoint {self.settings.base_url}: {e}") from e
