"""Call limits of one server (``limits`` in config): simultaneous calls overall and per client address, and user
turns per client per minute. Every refusal is a :class:`LimitExceeded` with a machine-readable code the server
passes to the client.

A call is counted from its offer (WebRTC) or ``start`` message (websocket), before its handler starts: an offer
whose connection never comes up stops counting after ``pending_ttl_s``. Calls opened from the Gradio page carry no
client address here; each counts as its own client.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from oviya.config import LimitSettings

WINDOW_S = 60.0  # max_turns_per_minute counts turns in a sliding window of this length


class LimitExceeded(Exception):
    """A limit refused a call or a turn.

    Attributes:
        code: ``max_sessions`` | ``max_connections_per_client`` | ``rate_limited``.
        message: for the user.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Call:
    client: str
    expires: float | None  # set until the call's handler starts


class CallLimits:
    """Book-keeping for the limits of one server process (not thread-safe: used on the event loop).

    Args:
        settings: the ``limits`` section.
        pending_ttl_s: an offer whose call has not started after this many seconds is forgotten.
        clock: monotonic seconds (a virtual clock in tests).
    """

    def __init__(self, settings: LimitSettings, pending_ttl_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.s = settings
        self.pending_ttl_s = pending_ttl_s
        self.clock = clock
        self._calls: dict[str, _Call] = {}
        self._turns: dict[str, deque[float]] = {}

    def open(self, session_id: str, client: str, pending: bool = True) -> None:
        """Count a new call from ``client`` (an address). ``pending``: not started yet (see :meth:`started`).

        Raises:
            LimitExceeded: ``max_sessions`` or ``max_connections_per_client``.
        """
        self._prune()
        if session_id in self._calls:
            return
        if len(self._calls) >= self.s.max_sessions:
            raise LimitExceeded("max_sessions", f"the server is busy: {self.s.max_sessions} calls are open; "
                                                "try again in a minute")
        if sum(c.client == client for c in self._calls.values()) >= self.s.max_connections_per_client:
            raise LimitExceeded("max_connections_per_client",
                                f"at most {self.s.max_connections_per_client} simultaneous calls per client")
        self._calls[session_id] = _Call(client, self.clock() + self.pending_ttl_s if pending else None)

    def started(self, session_id: str) -> None:
        """The call's handler started: it counts until :meth:`close`. A call without an offer (the Gradio page)
        is opened here as its own client.

        Raises:
            LimitExceeded: ``max_sessions`` (a Gradio call when the server is full).
        """
        call = self._calls.get(session_id)
        if call is None:
            self.open(session_id, f"session:{session_id}", pending=False)
        else:
            call.expires = None

    def close(self, session_id: str) -> None:
        self._calls.pop(session_id, None)

    def client_of(self, session_id: str) -> str:
        call = self._calls.get(session_id)
        return call.client if call else f"session:{session_id}"

    def admit_turn(self, session_id: str) -> None:
        """Count one user turn of ``session_id`` against its client's per-minute budget.

        Raises:
            LimitExceeded: ``rate_limited`` when the client already had ``max_turns_per_minute`` turns in 60 s.
        """
        now = self.clock()
        turns = self._turns.setdefault(self.client_of(session_id), deque())
        while turns and turns[0] <= now - WINDOW_S:
            turns.popleft()
        if len(turns) >= self.s.max_turns_per_minute:
            wait = turns[0] + WINDOW_S - now
            raise LimitExceeded("rate_limited", f"too many turns: at most {self.s.max_turns_per_minute} a minute; "
                                                f"try again in {wait:.0f} s")
        turns.append(now)

    def __len__(self) -> int:
        self._prune()
        return len(self._calls)

    def _prune(self) -> None:
        now = self.clock()
        for sid in [sid for sid, c in self._calls.items() if c.expires is not None and c.expires <= now]:
            del self._calls[sid]
        for client in [k for k, t in self._turns.items() if not t or t[-1] <= now - WINDOW_S]:
            del self._turns[client]
