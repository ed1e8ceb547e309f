"""Logging with the session id on every line (``server.log_format``: text or JSON via python-json-logger).

The session id lives in a context variable: the handler sets it in each of its callbacks, and every task the engine
starts from there (STT, LLM, TTS, playout) inherits it, so a line logged deep inside a stage still names its call.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

session_id: ContextVar[str] = ContextVar("oviya_session_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(session_id)s]: %(message)s"
JSON_FIELDS = ["asctime", "levelname", "name", "session_id", "message"]
QUIET = ("faster_whisper", "aioice", "aiortc", "httpx")  # their per-call INFO lines drown the session log


class SessionFilter(logging.Filter):
    """Adds ``record.session_id`` (``-`` outside a call)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.session_id = session_id.get()
        return True


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Configure the root logger once: one stream handler, session ids, ``fmt`` ``text`` | ``json``."""
    handler = logging.StreamHandler()
    handler.addFilter(SessionFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level", "asctime": "time"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
