"""``prompt_cache`` (a benchmark, run only when named): what keeping the persona's prompt in llama.cpp's KV state buys
(issue 16, lever 2).

``python -m eval prompt_cache [--profile cpu] [--quick]``: the profile's llama.cpp model answers everyday user lines
after the persona's system prompt, each line twice, the order alternating (A, B / B, A): A with the system prompt
evaluated ahead (:meth:`~oviya.llm.llama_cpp.LlamaCppChat.warmup`, as the engine does at start-up and on a persona
change), B with the KV state dropped first (:meth:`~oviya.llm.llama_cpp.LlamaCppChat.forget`: every prompt token
evaluated again). Reports the system prompt's tokens, first-token latency p50/p95 per side (ms, from the request to
the first streamed text) and the paired median B / A.
"""

from __future__ import annotations

import asyncio
import time

from tqdm import tqdm

from eval.context import Context
from eval.stats import paired_ratios, percentile
from oviya.brain.persona import load_persona
from oviya.llm import GenerationParams, Message
from oviya.llm.llama_cpp import LlamaCppChat

LINES = ("I failed my driving test again.", "What's your name?", "My sister is visiting next week.",
         "I can't sleep lately.", "Tell me something nice.", "Work was long today.")


async def _first_token_ms(llm: LlamaCppChat, messages: list[Message]) -> float:
    t0 = time.monotonic()
    async for _ in llm.stream(messages, GenerationParams(max_tokens=4, temperature=0.0, top_p=1.0)):
        return (time.monotonic() - t0) * 1000
    raise RuntimeError("the model streamed no text")


def run(ctx: Context) -> dict:
    llm = LlamaCppChat(ctx.settings.llm.llama_cpp, ctx.settings.cache_dir)
    system = Message(role="system", content=load_persona(ctx.settings.brain.persona).system_message())
    rows = []
    for i, line in enumerate(tqdm(LINES[: ctx.limit(default=len(LINES), quick=2)], desc="prompt_cache",
                                  file=ctx.progress)):
        for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
            if side == "A":
                llm.warmup([system])
            else:
                llm.forget()
            ms = asyncio.run(_first_token_ms(llm, [system, Message(role="user", content=line)]))
            rows.append({"config": side, "file": line, "ttft_ms": round(ms, 1)})
    ctx.write_rows("prompt_cache", rows)
    side = {s: [r["ttft_ms"] for r in rows if r["config"] == s] for s in ("A", "B")}
    return {"model": llm.name, "system_prompt_tokens": llm.count_tokens(system["content"]),
            "cached_ttft_ms_p50": percentile(side["A"], 50), "cached_ttft_ms_p95": percentile(side["A"], 95),
            "uncached_ttft_ms_p50": percentile(side["B"], 50), "uncached_ttft_ms_p95": percentile(side["B"], 95),
            "paired_ratio": paired_ratios(rows, ("ttft_ms",))["ttft_ms"], "pairs": len(side["A"])}
