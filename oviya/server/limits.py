"""Call limits of one server (``limits`` in config): simultaneous calls overall and per client address, and user
turns per client per minute. Every refusal is a :class:`LimitExceeded` with a machine-readable code the server
passes to the client.

A call is counted from its offer (WebRTC, the API's or the Gradio page's) or ``start`` message (websocket), before
its handler starts: an offer whose connection never comes up stops counting after ``pending_ttl_s``. An id that is
already open is refused (``session_exists``): a client cannot take over, double-count or free another call's slot.

Each call opened here gets a secret **call token** (:meth:`CallLimits.open` returns it): the server's only proof that
a request about a call comes from the client that opened it (oviya/server/app.py).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from oviya.config import LimitSettings

SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # every call id the server accepts (ids go into logs and file names)
WINDOW_S = 60.0  # max_turns_per_minute counts turns in a sliding window of this length


class LimitExceeded(Exception):
    """A limit refused a call or a turn.

    Attributes:
        code: ``max_sessions`` | ``max_connections_per_client`` | ``rate_limited`` | ``session_exists``.
        message: for the user.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PerMinute:
    """Events per key in a sliding window of :data:`WINDOW_S`; keys whose window is empty are forgotten.

    Args:
        limit: events a key may have in any window.
        clock: monotonic seconds (a virtual clock in tests).
    """

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._events: dict[str, deque[float]] = {}

    def admit(self, key: str) -> float | None:
        """Count one event of ``key``; returns None, or — when ``key`` is at its limit — the seconds until it may
        have another (the event is then not counted)."""
        now = self.clock()
        for other in [k for k, t in self._events.items() if t[-1] <= now - WINDOW_S]:
            del self._events[other]
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - WINDOW_S:
            events.popleft()
        if len(events) >= self.limit:
            return events[0] + WINDOW_S - now
        events.append(now)
        return None


@dataclass
class _Call:
    client: str
    expires: float | None  # set until the call's handler starts
    token: str  # the call's secret


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
        self._turns = PerMinute(settings.max_turns_per_minute, clock)

    def open(self, session_id: str, client: str, pending: bool = True) -> str:
        """Count a new call from ``client`` (an address). ``pending``: not started yet (see :meth:`started`).

        Returns:
            the call's token (``secrets.token_urlsafe(24)``).
        Raises:
            LimitExceeded: ``session_exists`` (the id is open), ``max_sessions`` or ``max_connections_per_client``.
        """
        self._prune()
        if session_id in self._calls:
            raise LimitExceeded("session_exists", "a call with this id is already open; use a new random id")
        if len(self._calls) >= self.s.max_sessions:
            raise LimitExceeded("max_sessions", f"the server is busy: {self.s.max_sessions} calls are open; "
                                                "try again in a minute")
        if sum(c.client == client for c in self._calls.values()) >= self.s.max_connections_per_client:
            raise LimitExceeded("max_connections_per_client",
                                f"at most {self.s.max_connections_per_client} simultaneous calls per client")
        token = secrets.token_urlsafe(24)
        self._calls[session_id] = _Call(client, self.clock() + self.pending_ttl_s if pending else None, token)
        return token

    def started(self, session_id: str) -> None:
        """The call's handler started: it counts until :meth:`close`. A call whose offer was forgotten (its
        connection came up after ``pending_ttl_s``) is opened again here as its own client.

        Raises:
            LimitExceeded: ``max_sessions`` when the server filled up meanwhile.
        """
        call = self._calls.get(session_id)
        if call is None:
            self.open(session_id, f"session:{session_id}", pending=False)
        else:
            call.expires = None

    def close(self, session_id: str) -> None:
        self._calls.pop(session_id, None)

    def token_of(self, session_id: str) -> str | None:
        """The open call's token, or None."""
        call = self._calls.get(session_id)
        return call.token if call else None

    def authorizes(self, session_id: str, token: str | None) -> bool:
        """True when ``token`` is the open call's token (constant-time compare)."""
        expected = self.token_of(session_id)
        return expected is not None and token is not None and hmac.compare_digest(expected.encode(), token.encode())

    def client_of(self, session_id: str) -> str:
        call = self._calls.get(session_id)
        return call.client if call else f"session:{session_id}"

    def admit_turn(self, session_id: str) -> None:
        """Count one user turn of ``session_id`` against its client's per-minute budget.

        Raises:
            LimitExceeded: ``rate_limited`` when the client already had ``max_turns_per_minute`` turns in 60 s.
        """
        wait = self._turns.admit(self.client_of(session_id))
        if wait is not None:
            raise LimitExceeded("rate_limited", f"too many turns: at most {self.s.max_turns_per_minute} a minute; "
                                                f"try again in {wait:.0f} s")

    def __len__(self) -> int:
        self._prune()
        return len(self._calls)

    def _prune(self) -> None:
        now = self.clock()
        for sid in [sid for sid, c in self._calls.items() if c.expires is not None and c.expires <= now]:
            del self._calls[sid]
