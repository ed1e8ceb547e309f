"""``persona``: how well the configured LLM chain keeps the persona, on ``prompts.jsonl``
(``{"text": str, "expected_emotion": str | null}`` per line), each prompt a fresh one-turn conversation.

- ``short_rate``: replies of at most 3 sentences (the style rule; the engine also cuts at ``brain.max_sentences``).
- ``plain_text_rate``: raw LLM replies with no markdown, list, emoji or code (:func:`oviya.brain.speech.is_plain`).
- ``emotion_label_accuracy``: the reply emotion label equals ``expected_emotion`` (lines that give one).
- ``ttft_ms_p50`` / ``tokens_per_s``: first text delta after the request; text deltas per second after it
  (llama.cpp streams one token per delta).
Model and persona come from the settings (e.g. ``OVIYA_LLM__LLAMA_CPP__MODEL=qwen2.5-0.5b``).
"""

from __future__ import annotations

import asyncio

from tqdm import tqdm

from eval.context import Context
from eval.replies import ask
from eval.stats import percentile
from oviya.brain.brain import Brain
from oviya.brain.speech import count_sentences, is_plain
from oviya.llm import GenerationParams

MAX_SENTENCES = 3  # the persona's style rule: one to three short spoken sentences


async def _ask(brain: Brain, text: str) -> dict:
    row = await ask(brain, text)
    return {**row, "sentences": count_sentences(row["reply"]), "plain": is_plain(row["reply"])}


def _rate(rows: list[dict], key: str) -> float | None:
    return round(sum(bool(r[key]) for r in rows) / len(rows), 4) if rows else None


def run(ctx: Context) -> dict:
    path = ctx.text_file("prompts.jsonl")
    if path is None:
        return {"skipped": "no prompts.jsonl", "short_rate": None, "plain_text_rate": None,
                "emotion_label_accuracy": None, "ttft_ms_p50": None}
    prompts = ctx.read_jsonl(path)
    prompts = prompts[: ctx.limit(default=len(prompts), quick=4)]
    c = ctx.components()
    s = ctx.settings
    brain = Brain(c.llm, c.persona, c.safety, c.identity, c.emotion, s.brain,
                  GenerationParams(s.llm.max_tokens, s.llm.temperature, s.llm.top_p), s.memory)
    rows = []
    for item in tqdm(prompts, desc="persona", file=ctx.progress):
        row = asyncio.run(_ask(brain, item["text"]))
        rows.append({"text": item["text"], "expected_emotion": item.get("expected_emotion"), **row})
    ctx.write_rows("persona", rows)
    llm_rows = [r for r in rows if r["route"] == "llm"]
    labelled = [r for r in rows if r["expected_emotion"]]
    return {
        "file": str(path), "n": len(rows), "llm": c.llm.name, "persona": c.persona.name,
        "short_rate": _rate([{**r, "short": r["sentences"] <= MAX_SENTENCES} for r in llm_rows], "short"),
        "plain_text_rate": _rate(llm_rows, "plain"),
        "emotion_label_accuracy": round(sum(r["emotion"] == r["expected_emotion"] for r in labelled) / len(labelled), 4)
        if labelled else None,
        "ttft_ms_p50": percentile([r["ttft_ms"] for r in llm_rows if r["ttft_ms"] is not None], 50),
        "tokens_per_s_p50": percentile([r["tokens_per_s"] for r in llm_rows if r["tokens_per_s"]], 50),
    }
