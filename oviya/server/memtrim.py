"""Giving freed heap memory back to the OS after each call (glibc ``malloc_trim``).

Every call allocates and frees tens of MB (audio buffers, ONNX and LLM scratch space) across worker threads; glibc
keeps freed chunks in its per-thread arenas, so a server's RSS drifted by ±30 MB from call to call and stepped up
over time without holding more live memory. Trimming after each call keeps RSS close to what is in use (the load
test's leak check reads it). A no-op where glibc is not the C library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)


def _load_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # musl, macOS: no malloc_trim
        return None


_malloc_trim = _load_trim()


def release_free_memory() -> None:
    """Return free heap pages of every arena to the OS (blocking, a few ms: call it off the event loop)."""
    if _malloc_trim is not None:
        _malloc_trim(0)
