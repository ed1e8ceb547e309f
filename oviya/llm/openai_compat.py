"""OpenAI-compatible chat endpoint (vLLM, llama.cpp server, LM Studio, …) through the official ``openai`` client
(streaming ``POST /v1/chat/completions``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from oviya.aio import openai_per_loop
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
        key = settings.api_key()
        self._client = openai_per_loop(settings.base_url, key, settings.timeout_s)
        # Warm-ups are blocking calls (start-up, a persona change, a pause's prompt): one synchronous client for all.
        self._warmup_client = openai.OpenAI(base_url=settings.base_url, api_key=key,
                                            timeout=settings.warmup_timeout_s, max_retries=0)

    def warmup(self, messages: list[Message]) -> None:
        """Blocking: ask for one token after ``messages``, so a server with a prefix cache (llama.cpp server, vLLM,
        ``oviya.serve``) holds the prompt and the connection path is warm before the first turn. A server that is
        down or slower than ``warmup_timeout_s`` is logged, not raised."""
        import openai

        try:
            self._warmup_client.chat.completions.create(model=self.settings.model, messages=list(messages),
                                                        max_tokens=1)
        except openai.OpenAIError as e:
            log.warning("warm-up of %s failed: %s", self.name, e)

    async def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[str]:
        import openai

        try:
            response = await self._client.get().chat.completions.create(
                model=self.settings.model, messages=list(messages), stream=True, max_tokens=params.max_tokens,
                temperature=params.temperature, top_p=params.top_p,
            )
            async for chunk in response:
                if chunk.choices and (delta := chunk.choices[0].delta.content):
                    yield delta
        except openai.OpenAIError as e:
            raise LLMError(f"openai-compatible endpoint {self.settings.base_url}: {e}") from e
