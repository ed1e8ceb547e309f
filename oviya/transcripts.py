"""Durable conversation transcripts: one JSONL file per session, one line per finished turn.

Each line is appended, flushed and fsynced as the turn finishes (before the next one starts), so a server killed
at any moment (SIGKILL, power loss after the fsync) keeps every completed turn. A line is written with a single
``write`` of less than a page in practice; a torn last line from a crash mid-write is skipped by
:func:`read_transcript`.

Line schema: ``{"session_id", "time" (ISO 8601 UTC wall clock when the turn finished), "turn_id", "source",
"outcome", "user_text", "reply_text", "user_emotion", "emotion", "route", ..., the per-stage timings in ms}`` —
:meth:`oviya.events.TurnRecord.as_dict` plus the first two keys.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from oviya.events import TurnRecord

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")


class TranscriptStore:
    """Appends turn records under ``directory`` (created on first write).

    Args:
        directory: where ``<session id>.jsonl`` files go.
        fsync: force each line to disk (off only for throwaway stores).
    """

    def __init__(self, directory: Path, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.fsync = fsync

    def path(self, session_id: str) -> Path:
        """The session's file; characters outside ``[A-Za-z0-9_.-]`` in the id become ``_``."""
        return self.directory / f"{_SAFE_ID.sub('_', session_id)[:128]}.jsonl"

    def append(self, session_id: str, record: TurnRecord) -> None:
        """Append one finished turn and flush it to disk. Raises OSError (disk full, read-only dir)."""
        line = {"session_id": session_id, "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                **record.as_dict()}
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.path(session_id), "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())


def read_transcript(path: Path) -> list[dict[str, Any]]:
    """The turns of one session file, in order; a torn last line (crash mid-write) is skipped."""
    turns = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            turns.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return turns
