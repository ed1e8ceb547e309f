"""A fallback chain of chat models (after LiveKit Agents' ``FallbackAdapter``).

Each reply tries the backends in order. A backend that raises, or gives no first token within
``first_token_timeout_s`` (the last one tried: ``stall_timeout_s``), is abandoned for this reply and the next one is
asked at once; it is then skipped for
``retry_after_s`` so a dead server does not cost every turn its timeout. Once a backend has produced text, the reply
stays with it: a later error or a stall longer than ``stall_timeout_s`` ends the reply with what was said so far
(switching voices mid-sentence would be worse). When every backend fails, :class:`LLMError` is raised and the brain
speaks the persona's fallback line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

from oviya.aio import within
from oviya.cooldown import Cooldown
from oviya.llm import ChatModel, GenerationParams, LLMError, Message

log = logging.getLogger(__name__)


class FallbackChat:
    """:class:`oviya.llm.ChatModel` over an ordered list of chat models.

    Args:
        models: tried in this order.
        first_token_timeout_s: a backend silent this long before its first token is replaced (s).
        stall_timeout_s: after the first token, a gap this long ends the reply (s).
        retry_after_s: a failed backend is skipped for this long (s) unless every other one fails too.
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(self, models: list[ChatModel], first_token_timeout_s: float, stall_timeout_s: float,
                 retry_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not models:
            raise ValueError("FallbackChat needs at least one model")
        self.models = models
        self.name = " -> ".join(m.name for m in models)
        self.first_token_timeout_s = first_token_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self.health = Cooldown(len(models), retry_after_s, clock)
        self.last_used: str | None = None  # name of the backend that produced the last reply

    def reordered(self, order: list[int]) -> FallbackChat:
        """A chain of the same models (``order``: indices into :attr:`models`) with the same timeouts and its own
        failure book-keeping: one call's choice of the backend asked first (the page's live controls).

        Raises:
            ValueError: an empty order. IndexError: an index outside the chain.
        """
        return FallbackChat([self.models[i] for i in order], self.first_token_timeout_s, self.stall_timeout_s,
                            self.health.retry_after_s, self.health.clock)

    def patient(self, timeout_s: float) -> FallbackChat:
        """A chain of the same models in the same order that waits up to ``timeout_s`` (s) for each backend's first
        token and between tokens, with its own failure book-keeping: for background work that queues behind live
        replies on a shared model (the end-of-session summary), where the live chain's first-token timeout would
        abandon a backend that is busy, not down, and one slow summary must not mark it failed for the live turns."""
        return FallbackChat(self.models, timeout_s, timeout_s, self.health.retry_after_s, self.health.clock)

    def warmup(self, messages: list[Message]) -> None:
        for m in self.models:
            m.warmup(messages)

    def warm_first(self, messages: list[Message]) -> None:
        """Blocking: :meth:`warmup` of the one backend the next call asks first (a mid-turn prompt warm-up: the
        others would only compete for the machine)."""
        self.models[self.health.order()[0]].warmup(messages)

    async def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[str]:
        errors = []
        order = self.health.order()
        for i in order:
            model = self.models[i]
            it = model.stream(messages, params).__aiter__()
            # The last backend has no one to hand over to: giving up on it after first_token_timeout_s would only
            # trade a slow answer (an uncached prompt on a busy CPU) for the fallback line, so it gets the stall
            # timeout instead, which still bounds a hung server.
            timeout = self.stall_timeout_s if i == order[-1] else self.first_token_timeout_s
            try:
                first = await within(it.__anext__(), timeout)
            except StopAsyncIteration:
                first = None  # an empty reply is an answer, not a failure
            except (LLMError, TimeoutError, OSError) as e:
                reason = f"no first token in {timeout:.1f} s" if isinstance(e, TimeoutError) else str(e)
                log.warning("LLM backend %s failed (%s); trying the next one", model.name, reason)
                errors.append(f"{model.name}: {reason}")
                self.health.failed(i)
                await _close(it)
                continue
            self.health.succeeded(i)
            self.last_used = model.name
            try:
                if first is not None:
                    yield first
                    while True:
                        try:
                            yield await within(it.__anext__(), self.stall_timeout_s)
                        except StopAsyncIteration:
                            break
            except (LLMError, TimeoutError, OSError) as e:
                log.warning("LLM backend %s failed mid-reply (%s); the reply ends here", model.name, e or "stalled")
                self.health.failed(i)
            finally:
                await _close(it)
            return
        raise LLMError("every LLM backend failed: " + "; ".join(errors))


async def _close(it: AsyncIterator[str]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            log.debug("closing an abandoned LLM stream failed", exc_info=True)
