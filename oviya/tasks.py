"""The background tasks of one conversation, owned by name (after Kyutai Unmute's ``unmute_handler.py``).

A new task under a name replaces (cancels) the old one, so two replies or two speculative transcriptions never
run side by side by accident, and one :meth:`NamedTasks.aclose` cancels every task the conversation started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class NamedTasks:
    """Named asyncio tasks plus unnamed ones that must still end with the conversation."""

    def __init__(self, prefix: str = "oviya") -> None:
        self._prefix = prefix
        self._named: dict[str, asyncio.Task] = {}
        self._owned: set[asyncio.Task] = set()
        self.closed = False  # aclose() has begun: the conversation is ending

    def start(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run ``coro`` as the task ``name``, cancelling the task of that name still running."""
        self.cancel(name)
        task = self._named[name] = asyncio.create_task(coro, name=f"{self._prefix}-{name}")
        return task

    def own(self, coro: Coroutine[Any, Any, Any], label: str) -> asyncio.Task:
        """Run ``coro`` as a task no name replaces (``label`` names it in logs), cancelled by :meth:`aclose`."""
        task = asyncio.create_task(coro, name=f"{self._prefix}-{label}")
        self._keep(task)
        return task

    def adopt(self, name: str) -> asyncio.Task | None:
        """Take the task ``name`` (running or finished) out of its name: a newer task of that name will not cancel
        it, :meth:`aclose` still does. Returns it, or None when there is none."""
        task = self._named.pop(name, None)
        if task is not None:
            self._keep(task)
        return task

    def rename(self, old: str, new: str) -> asyncio.Task | None:
        """Move the task ``old`` to the name ``new`` (cancelling the task of that name still running); returns it,
        or None when ``old`` runs no task."""
        task = self._named.pop(old, None)
        if task is not None:
            self.cancel(new)
            self._named[new] = task
        return task

    def _keep(self, task: asyncio.Task) -> None:
        if not task.done():
            self._owned.add(task)
            task.add_done_callback(self._owned.discard)

    def get(self, name: str) -> asyncio.Task | None:
        """The task ``name`` while it runs, else None."""
        task = self._named.get(name)
        return task if task is not None and not task.done() else None

    def running(self, name: str) -> bool:
        return self.get(name) is not None

    def pending(self) -> list[asyncio.Task]:
        """Every task of the conversation that has not ended (named or owned)."""
        return [t for t in [*self._named.values(), *self._owned] if not t.done()]

    def cancel(self, name: str) -> None:
        """Cancel the task ``name`` if it runs (it ends at its next await)."""
        if (task := self.get(name)) is not None:
            task.cancel()

    async def aclose(self, last: tuple[str, ...] = ()) -> None:
        """Cancel every task and wait for each to end; the named ones in ``last`` after all others (in that order).
        Idempotent."""
        self.closed = True
        first = [t for n, t in self._named.items() if n not in last] + list(self._owned)
        for task in [*first, *(self._named[n] for n in last if n in self._named)]:
            if not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except Exception:  # the conversation is ending: a task's error is only logged
                    log.exception("task %s failed while the conversation closed", task.get_name())
