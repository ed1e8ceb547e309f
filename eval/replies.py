"""One user turn through the real brain, timed: shared by the text tasks (``persona``, ``dialogue``)."""

from __future__ import annotations

import asyncio
import time

from oviya.brain.brain import Brain
from oviya.llm import LLMError


async def ask(brain: Brain, text: str) -> dict:
    """Plan and stream the reply to ``text`` (nothing is committed to the history).

    Returns:
        ``route`` (``fallback`` when every LLM backend failed: the persona's fallback line is the reply, as in a
        call), ``crisis`` (answered with a crisis safe reply), ``emotion`` (the planned reply emotion), ``reply``
        (stripped text), ``ttft_ms`` (first text delta after the request, ms; None without one) and ``tokens_per_s``
        (text deltas per second after the first: llama.cpp streams one token per delta).
    """
    plan = await asyncio.to_thread(brain.plan, text)  # sentence embeddings
    t0 = time.perf_counter()
    first = None
    deltas = []
    route = plan.route
    try:
        async for delta in brain.stream(text, plan):
            if first is None:
                first = time.perf_counter()
            deltas.append(delta)
    except LLMError:
        route, first, deltas = "fallback", None, [brain.persona.fallback_line]
    end = time.perf_counter()
    return {
        "route": route, "crisis": plan.safety is not None and plan.safety.crisis, "emotion": plan.emotion,
        "reply": "".join(deltas).strip(),
        "ttft_ms": None if first is None else round((first - t0) * 1000, 1),
        "tokens_per_s": round((len(deltas) - 1) / (end - first), 1) if first and len(deltas) > 1 and end > first else None,
    }
