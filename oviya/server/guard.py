"""What stands in front of every request: the route allow-list, the bearer token checked before any body is read,
and request bodies capped while they stream in.

:class:`RequestGuard` is plain ASGI middleware, so it runs before FastAPI reads or parses anything: a request to an
API route without the token is answered 401 with its body unread, and a body is read at most ``max_body_bytes`` + 1
bytes far, whether it declares a ``Content-Length`` or comes chunked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.routing import Mount

from oviya.server.auth import TokenAuth

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Oviya's own HTTP API: the bearer token is checked by the guard before the route runs.
PROTECTED = re.compile(r"^/(api/.*|metrics|webrtc/offer)$")


class UnexpectedRoutes(RuntimeError):
    """The app serves a route that is not on the allow-list (a library upgrade added one?)."""


def served_routes(routes: Iterable[Any], prefix: str = "") -> set[str]:
    """``"METHODS path"`` of every route, mounted sub-apps' included (``"WS path"`` for websockets)."""
    out: set[str] = set()
    for route in routes:
        if isinstance(route, Mount):
            out |= served_routes(route.routes, prefix + route.path)
            continue
        if callable(getattr(route, "effective_candidates", None)):  # FastAPI >= 0.160: an included APIRouter
            out |= served_routes([*route.effective_candidates(), *route.effective_low_priority_routes()], prefix)
            continue
        if not getattr(route, "path", "") and getattr(route, "original_route", None) is not None:
            out |= served_routes([route.original_route], prefix)  # ... and a plain route or mount inside it
            continue
        path = prefix + route.path
        methods = getattr(route, "methods", None)
        out.add(f"{','.join(sorted(methods))} {path}" if methods else f"WS {path}")
    return out


def check_routes(routes: Iterable[Any], allowed: set[str]) -> None:
    """Raises :class:`UnexpectedRoutes` naming each route not in ``allowed``."""
    extra = served_routes(routes) - allowed
    if extra:
        raise UnexpectedRoutes(f"routes not on the allow-list (oviya/server/routes.py): {sorted(extra)}")


class RequestGuard:
    """ASGI middleware: 401 for an API route without the token, 413 for a body over ``max_body_bytes``.

    Args:
        app: the ASGI app behind it.
        auth: the bearer-token check (off without ``OVIYA_AUTH_TOKEN``).
        max_body_bytes: largest request body read.
    """

    def __init__(self, app: Callable, auth: TokenAuth, max_body_bytes: int) -> None:
        self.app = app
        self.auth = auth
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if PROTECTED.match(scope["path"]) and not self.auth.accepts_header(headers.get("authorization")):
            await _reply(send, 401, {"detail": "missing or wrong bearer token (Authorization: Bearer "
                                               "<OVIYA_AUTH_TOKEN>)", "code": "unauthorized"},
                         [(b"www-authenticate", b"Bearer")])
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await self._too_large(send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # Read the whole body here, never more than the cap, then hand it on: a chunked body has no length to check.
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                await self._too_large(send)
                return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: the client's disconnect, when it comes

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await _reply(send, 413, {"detail": f"request bodies are limited to {self.max_body_bytes} bytes",
                                 "code": "body_too_large"}, [(b"connection", b"close")])


async def _reply(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": data})
