"""Session history within a token budget, and per-user memory across sessions with the real embedded LLM."""

from __future__ import annotations

import asyncio
import json

from oviya.brain.memory import UserMemory, estimate_tokens, trim_history
from oviya.clock import FastForwardClock
from oviya.config import load_settings
from oviya.engine import TurnEngine
from oviya.events import TurnDone


def test_history_is_trimmed_oldest_first_to_whole_exchanges():
    history = []
    for i in range(10):
        history += [{"role": "user", "content": f"question {i} " * 20}, {"role": "assistant", "content": f"answer {i} " * 20}]
    kept = trim_history(history, budget_tokens=400)
    assert kept and kept[0]["role"] == "user" and kept[-1] == history[-1]
    assert sum(estimate_tokens(m["content"]) for m in kept) <= 400 < sum(estimate_tokens(m["content"]) for m in history)


def test_user_memory_survives_on_disk_and_keys_never_name_paths(tmp_path):
    mem = UserMemory(tmp_path, max_chars=50)
    mem.save("../../etc/passwd", "likes gardening " * 10)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].parent == tmp_path and "passwd" not in files[0].name
    assert mem.load("../../etc/passwd") == ("likes gardening " * 10)[:50] and mem.load("someone else") is None
    files[0].write_text("{not json")
    assert mem.load("../../etc/passwd") is None  # a corrupt file is skipped, not fatal


def test_a_returning_user_is_remembered_in_the_next_session(components, tmp_path):
    settings = load_settings(memory={"dir": str(tmp_path)})

    async def session(text: str) -> TurnEngine:
        engine = TurnEngine(components, settings, FastForwardClock())
        await engine.start()
        engine.memory.set_key("ana@example.org")
        engine.push_text(text)
        while not isinstance(await engine.next_event(60), TurnDone):
            pass
        await engine.aclose()  # writes the user's notes
        return engine

    first = asyncio.run(session("My name is Ana and I grow tomatoes in my garden."))
    notes = json.loads(next(tmp_path.glob("*.json")).read_text())["summary"]
    assert notes and first.brain.user_summary == notes

    async def second() -> str:
        engine = TurnEngine(components, settings, FastForwardClock())
        engine.memory.set_key("ana@example.org")
        await asyncio.sleep(0.3)  # the capped load (200 ms) has finished
        return engine.brain.messages_for("Hi again!")[0]["content"]

    assert notes in asyncio.run(second())
