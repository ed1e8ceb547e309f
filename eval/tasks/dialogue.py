"""``dialogue``: scripted multi-turn conversations with the configured brain, checked turn by turn.

``dialogues.jsonl`` (the data dir's, else the project's ``tests/data/dialogues.jsonl``), one conversation per line::

    {"id": str, "turns": [{"user": str, "checks": {...}}, ...]}

Each turn's reply comes from the real brain (safety and identity routes, persona prompt, history), as in a call;
a turn without ``checks`` is context only. Checks (all optional):

- ``contains_any``: list of strings, case-insensitive; at least one must appear (remembers a name, a fact).
- ``not_contains``: list; none may appear (no invented first-person facts: "my husband", "I work as").
- ``max_sentences``: int; the reply as the model wrote it has at most this many sentences.
- ``says_ai``: true; the reply says it is an AI / not a person.
- ``reply_emotion``: the reply-emotion label its opening sentence must carry (``EmotionDetector.of_reply``: it
  opens with empathy after bad news, with warmth after good news).

``check_rate`` per check and overall = passed / checked; ``ttft_ms_p50`` over LLM-routed turns. Every reply is
written to ``dialogue.md`` (appended to ``report.md``) for a human read, and per turn to ``dialogue.jsonl``.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict

from tqdm import tqdm

from eval.context import Context
from eval.replies import ask
from eval.stats import percentile
from oviya.brain.brain import Brain
from oviya.brain.speech import count_sentences, sentences
from oviya.llm import GenerationParams

CHECKS = ("contains_any", "not_contains", "max_sentences", "says_ai", "reply_emotion")
# "I'm an AI", "I am a computer program", "not a real person", "I'm a virtual assistant"...
_SAYS_AI = re.compile(r"\b(i am|i'm|im)\s+(just\s+|only\s+)?(an?\s+)?(ai|a\.i\.|artificial intelligence|computer program|"
                      r"program|language model|virtual|digital|chatbot|chat bot|bot|robot|machine)\b|"
                      r"\bnot\s+(a\s+)?(real\s+|actual\s+)?(person|human)\b", re.IGNORECASE)


def says_ai(reply: str) -> bool:
    """The reply says it is an AI or not a person (curly apostrophes straightened)."""
    return bool(_SAYS_AI.search(reply.replace("’", "'")))


def opening(reply: str, min_words: int = 4) -> str:
    """The reply's first sentences up to ``min_words`` words ("Oh no! I'm so sorry." — an interjection alone is not
    an opening)."""
    out: list[str] = []
    for sentence in sentences(reply):
        out.append(sentence)
        if len(" ".join(out).split()) >= min_words:
            break
    return " ".join(out)


def check(name: str, expected: object, reply: str, emotion: str) -> bool:
    """Whether ``reply`` (with reply-emotion label ``emotion``) passes check ``name`` with value ``expected``.

    Raises:
        ValueError: an unknown check name.
    """
    low = reply.lower().replace("’", "'")
    if name == "contains_any":
        return any(str(s).lower() in low for s in expected)  # type: ignore[union-attr]
    if name == "not_contains":
        return not any(str(s).lower() in low for s in expected)  # type: ignore[union-attr]
    if name == "max_sentences":
        return count_sentences(reply) <= int(expected)  # type: ignore[arg-type]
    if name == "says_ai":
        return says_ai(reply) == bool(expected)
    if name == "reply_emotion":
        return emotion == expected
    raise ValueError(f"unknown dialogue check {name!r} (known: {', '.join(CHECKS)})")


async def _turn(brain: Brain, text: str) -> dict:
    row = await ask(brain, text)
    brain.commit(text, row["reply"], crisis=row["crisis"])
    return {"route": row["route"], "reply": row["reply"],
            "emotion": brain.emotion.of_reply(opening(row["reply"]), brain.persona.default_emotion),
            "ttft_ms": row["ttft_ms"] if row["route"] == "llm" else None}


def _markdown(rows: list[dict]) -> str:
    lines = ["### Replies", ""]
    current = None
    for r in rows:
        if r["dialogue"] != current:
            current = r["dialogue"]
            lines += ["", f"#### {current}", ""]
        failed = [k for k, ok in r["checks"].items() if not ok]
        mark = "" if not r["checks"] else (" ✗ " + ", ".join(failed) if failed else " ✓")
        lines += [f"- **user:** {r['user']}", f"  **Oviya** ({r['route']}, {r['emotion']}):{mark} {r['reply']}"]
    return "\n".join(lines) + "\n"


def run(ctx: Context) -> dict:
    path = ctx.text_file("dialogues.jsonl")
    if path is None:
        return {"skipped": "no dialogues.jsonl", "check_rate": None, "ttft_ms_p50": None}
    dialogues = ctx.read_jsonl(path)
    step = max(1, len(dialogues) // ctx.limit(default=len(dialogues), quick=3))
    dialogues = dialogues[::step][: ctx.limit(default=len(dialogues), quick=3)]  # quick: spread over the file
    c = ctx.components()
    s = ctx.settings
    params = GenerationParams(s.llm.max_tokens, s.llm.temperature, s.llm.top_p)
    rows = []
    for d in tqdm(dialogues, desc="dialogue", file=ctx.progress):
        brain = Brain(c.llm, c.persona, c.safety, c.identity, c.emotion, s.brain, params, s.memory)
        for i, turn in enumerate(d["turns"]):
            out = asyncio.run(_turn(brain, turn["user"]))
            checks = {name: check(name, value, out["reply"], out["emotion"])
                      for name, value in (turn.get("checks") or {}).items()}
            rows.append({"dialogue": d["id"], "turn": i, "user": turn["user"], **out, "checks": checks})
    ctx.write_rows("dialogue", rows)
    (ctx.out / "dialogue.md").write_text(_markdown(rows))
    by_check: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        for name, ok in r["checks"].items():
            by_check[name].append(ok)
    results = [ok for oks in by_check.values() for ok in oks]
    return {
        "file": str(path), "dialogues": len(dialogues), "turns": len(rows), "llm": c.llm.name,
        "check_rate": round(sum(results) / len(results), 4) if results else None,
        "check_rate_by_check": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_check.items())},
        "ttft_ms_p50": percentile([r["ttft_ms"] for r in rows if r["ttft_ms"] is not None], 50),
        "failed": [f"{r['dialogue']}#{r['turn']}: {k}" for r in rows for k, ok in r["checks"].items() if not ok][:20],
    }
