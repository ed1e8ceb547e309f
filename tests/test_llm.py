"""LLM backends and the fallback chain, with the real embedded model (SmolLM2 via llama.cpp) everywhere.

Ollama and OpenAI-compatible servers cannot run here: their backends are checked with the official clients against
local servers speaking the real wire protocols (tests/protocol_servers.py) — protocol tests.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from oviya.components import Components
from oviya.config import Settings
from oviya.llm import GenerationParams, LLMError
from oviya.llm.fallback import FallbackChat
from oviya.llm.ollama import OllamaChat
from oviya.llm.openai_compat import OpenAICompatChat
from tests.protocol_servers import LocalServer

PARAMS = GenerationParams(max_tokens=24, temperature=0.0, top_p=1.0)
MESSAGES = [{"role": "system", "content": "You are a kind assistant."}, {"role": "user", "content": "Say hello."}]


async def collect(model, messages=MESSAGES) -> str:
    return "".join([d async for d in model.stream(messages, PARAMS)])


def embedded(components: Components):
    return components.llm.models[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket closes: connection refused


def ollama(settings: Settings, host: str, **kw) -> OllamaChat:
    return OllamaChat(settings.llm.ollama.model_copy(update={"host": host, "model": "smollm2", **kw}))


def openai_compat(settings: Settings, base_url: str) -> OpenAICompatChat:
    return OpenAICompatChat(settings.llm.openai.model_copy(update={"base_url": base_url, "model": "smollm2"}))


def test_ollama_protocol_real_client_streams_the_embedded_models_reply(settings, components):
    with LocalServer(embedded(components)) as server:
        text = asyncio.run(collect(ollama(settings, server.url)))
    assert text.strip() and text == asyncio.run(collect(embedded(components)))  # same model, greedy: same words


def test_openai_protocol_real_client_streams_the_embedded_models_reply(settings, components):
    with LocalServer(embedded(components)) as server:
        text = asyncio.run(collect(openai_compat(settings, server.url + "/v1")))
    assert text.strip() and text == asyncio.run(collect(embedded(components)))


def test_ollama_down_is_retried_with_backoff_then_reported(settings):
    model = ollama(settings, f"http://127.0.0.1:{closed_port()}", retries=2, backoff_s=0.05)
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="ollama"):
        asyncio.run(collect(model))
    assert time.monotonic() - t0 >= 0.05 + 0.1  # two retries waited 0.05 s then 0.1 s


def test_fallback_replaces_a_down_backend_and_then_skips_it(settings, components):
    down = openai_compat(settings, f"http://127.0.0.1:{closed_port()}/v1")
    chain = FallbackChat([down, embedded(components)], first_token_timeout_s=1.0, stall_timeout_s=5.0,
                         retry_after_s=60.0)
    t0 = time.monotonic()
    text = asyncio.run(collect(chain))
    assert text.strip() and chain.last_used == embedded(components).name
    assert time.monotonic() - t0 < 1.0 + 2.0  # refused at once; the embedded reply itself takes < 2 s here
    asyncio.run(collect(chain))
    assert chain.health.order()[0] == 1  # the failed backend is tried last until retry_after_s has passed


def test_fallback_replaces_a_hanging_backend_within_its_first_token_timeout(settings, components):
    with LocalServer(embedded(components), hang=True) as server:
        chain = FallbackChat([ollama(settings, server.url, retries=0), embedded(components)],
                             first_token_timeout_s=1.0, stall_timeout_s=5.0, retry_after_s=60.0)

        async def first_token_after() -> float:
            t0 = time.monotonic()
            async for _ in chain.stream(MESSAGES, PARAMS):
                return time.monotonic() - t0
            raise AssertionError("no reply")

        waited = asyncio.run(first_token_after())
    assert chain.last_used == embedded(components).name
    assert 1.0 <= waited < 1.0 + 1.0  # replaced after the 1 s timeout, then the embedded model's first token


def test_every_backend_failing_raises(settings):
    chain = FallbackChat([openai_compat(settings, f"http://127.0.0.1:{closed_port()}/v1")], 1.0, 5.0, 30.0)
    with pytest.raises(LLMError, match="every LLM backend failed"):
        asyncio.run(collect(chain))


def test_the_embedded_model_keeps_a_warmed_prompt_until_told_to_forget_it(components):
    llm = embedded(components)
    llm.warmup(MESSAGES[:1])
    assert llm._llm.n_tokens > llm.count_tokens(MESSAGES[0]["content"])  # the system prompt sits in the KV state
    llm.forget()
    assert llm._llm.n_tokens == 0
    assert asyncio.run(collect(llm))  # and it still answers, evaluating the whole prompt
