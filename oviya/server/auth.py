"""Bearer-token auth (``OVIYA_AUTH_TOKEN``): off when no token is set.

HTTP clients send ``Authorization: Bearer <token>``; websocket clients, which browsers cannot give headers, add
``?token=<token>`` to the URL; the Gradio page asks for the token as the password of its login form (any user
name) and its calls then ride on Gradio's session cookie. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request
from pydantic import SecretStr


class TokenAuth:
    """Args: token: the shared secret, or None for an open server."""

    def __init__(self, token: SecretStr | None) -> None:
        self._token = token.get_secret_value() if token is not None else ""
        self.enabled = bool(self._token)

    def accepts(self, presented: str | None) -> bool:
        """True when auth is off, or ``presented`` is the token."""
        if not self.enabled:
            return True
        return presented is not None and hmac.compare_digest(presented.encode(), self._token.encode())

    def accepts_header(self, authorization: str | None) -> bool:
        """True for ``Bearer <token>`` (or when auth is off)."""
        scheme, _, value = (authorization or "").partition(" ")
        return self.accepts(value.strip() if scheme.lower() == "bearer" else None)

    async def require(self, request: Request) -> None:
        """FastAPI dependency. Raises HTTPException 401 without a valid bearer token."""
        if not self.accepts_header(request.headers.get("authorization")):
            raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer <OVIYA_AUTH_TOKEN>)",
                                headers={"WWW-Authenticate": "Bearer"})

    def gradio_login(self, username: str, password: str) -> bool:
        """Gradio's ``auth`` callable: any user name, the token as password."""
        return self.accepts(password)
