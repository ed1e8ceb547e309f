"""Durable conversation transcripts: one JSONL file per session, one line per finished turn.

Each line is appended, flushed and fsynced as the turn finishes (before the next one starts), so a server killed
at any moment (SIGKILL, power loss after the fsync) keeps every completed turn, and the turn in flight at hang-up
is written too (outcome ``hangup``). A torn last line from a crash mid-write is skipped by :func:`read_transcript`
and ended before the next line is appended.

Line schema: ``{"session_id", "time" (ISO 8601 UTC wall clock when the turn finished), "turn_id", "source",
"outcome", "user_text", "reply_text", "user_emotion", "emotion", "route", ..., the per-stage timings in ms}`` —
:meth:`oviya.events.TurnRecord.as_dict` plus the first two keys.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oviya.events import TurnRecord

_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the server's call ids (oviya/server/limits.py)


class TranscriptStore:
    """Appends turn records under ``directory`` (created on first write).

    A line is never lost to an earlier failure: a write that fails (disk full) is cut back to the file's last good
    byte, and a torn last line (a crash mid-write) is ended before the next line is appended. A new file is made
    durable by fsyncing its directory too. When a session's file is created, the oldest files beyond
    ``max_files`` / ``max_bytes`` are deleted (retention).

    Args:
        directory: where ``<session id>.jsonl`` files go.
        fsync: force each line to disk (off only for throwaway stores).
        max_files: session files kept at most.
        max_bytes: total size of the session files kept at most.
    """

    def __init__(self, directory: Path, fsync: bool = True, max_files: int = 10_000,
                 max_bytes: int = 1 << 30) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        self.max_files = max_files
        self.max_bytes = max_bytes

    def path(self, session_id: str) -> Path:
        """The session's file: ``<session_id>.jsonl``, one file per id.

        Raises:
            ValueError: an id outside ``[A-Za-z0-9_-]{1,64}`` (no two ids share a file, none names a path).
        """
        if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
            raise ValueError(f"not a session id: {session_id!r:.80}")
        return self.directory / f"{session_id}.jsonl"

    def append(self, session_id: str, record: TurnRecord) -> None:
        """Append one finished turn and flush it to disk.

        Raises:
            OSError: disk full, read-only directory (the file is left as it was before the call).
            ValueError: a bad session id.
        """
        path = self.path(session_id)
        line = json.dumps({"session_id": session_id,
                           "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                           **record.as_dict()}, ensure_ascii=False) + "\n"
        self.directory.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        if created:
            self.prune()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            good = os.fstat(fd).st_size
            if good and os.pread(fd, 1, good - 1) != b"\n":
                line = "\n" + line  # end a torn line left by a crash: the new line starts clean
            try:
                data = memoryview(line.encode("utf-8"))
                while data:  # a short write (disk filling up) goes on; the next one raises ENOSPC
                    data = data[os.write(fd, data):]
                if self.fsync:
                    os.fsync(fd)
            except OSError:
                os.ftruncate(fd, good)  # no partial line stays to swallow the next good one
                raise
        finally:
            os.close(fd)
        if created and self.fsync:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the new file's directory entry survives a power loss too
            finally:
                os.close(dir_fd)

    def prune(self) -> list[Path]:
        """Delete the oldest session files beyond ``max_files`` / ``max_bytes``; returns the deleted paths."""
        files = sorted(self.directory.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
        kept_bytes, deleted = 0, []
        for i, f in enumerate(files):
            kept_bytes += f.stat().st_size
            # room for the new file being created: one file fewer than max_files stays
            if i >= self.max_files - 1 or kept_bytes > self.max_bytes:
                f.unlink(missing_ok=True)
                deleted.append(f)
        return deleted


def read_transcript(path: Path) -> list[dict[str, Any]]:
    """The turns of one session file, in order; a torn last line (crash mid-write) is skipped."""
    turns = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            turns.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return turns
