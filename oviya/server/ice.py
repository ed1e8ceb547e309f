"""ICE configuration: loopback-only WebRTC for tests, or a TURN relay for hosts behind NAT (Hugging Face Spaces).

aioice leaves 127.0.0.1 out of its host candidates and aiortc falls back to a public STUN server when no ICE
servers are configured. With ``server.ice_hosts`` set (env ``OVIYA_ICE_HOSTS=127.0.0.1``) both are replaced:
candidates come only from the listed addresses and no ICE server is used.

With ``server.turn: hf`` TURN credentials come from FastRTC's credential endpoint (``server.turn_credentials_url``,
the Space's ``HF_TOKEN`` as bearer, as FastRTC's Spaces deployment guide does). The server takes one long-lived set
at start-up and keeps it to itself; each browser call fetches its own short-lived set
(``server.turn_credentials_ttl_s``) when it starts, at most ``server.turn_credentials_per_minute`` per client address.
No credential is ever part of the page's public configuration.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx

from oviya.config import ServerSettings
from oviya.server.limits import LimitExceeded, PerMinute

SERVER_TURN_TTL_S = 360_000  # FastRTC's deployment guide: the server's credentials outlive any call


class TurnConfigError(RuntimeError):
    """``server.turn: hf`` without ``HF_TOKEN``, or the credential endpoint failed at start-up."""


def restrict_ice_hosts(hosts: list[str]) -> None:
    """Make every aioice connection in this process gather host candidates only from ``hosts``."""
    import aioice.ice

    allowed = list(hosts)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(allowed)


class TurnCredentials:
    """Short-lived TURN credentials from the credential endpoint.

    Args:
        settings: the ``server`` section (url, ttl, per-minute limit).
        hf_token: the bearer token for the endpoint.
    """

    def __init__(self, settings: ServerSettings, hf_token: str) -> None:
        self.s = settings
        self._token = hf_token
        self._asked = PerMinute(settings.turn_credentials_per_minute)

    def fetch(self, ttl_s: int) -> dict[str, Any]:
        """``{"iceServers": [...]}`` valid for ``ttl_s`` seconds.

        Raises:
            TurnConfigError: the endpoint failed or answered something else.
        """
        try:
            r = httpx.get(self.s.turn_credentials_url, params={"ttl": ttl_s},
                          headers={"Authorization": f"Bearer {self._token}"}, timeout=10)
            r.raise_for_status()
            config = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise TurnConfigError(f"TURN credentials not available from {self.s.turn_credentials_url}: {e}") from e
        if not isinstance(config, dict) or not isinstance(config.get("iceServers"), list):
            raise TurnConfigError("the TURN credential endpoint answered no iceServers")
        return config

    async def for_client(self, client: str) -> dict[str, Any]:
        """A browser call's own credentials (``turn_credentials_ttl_s``).

        Raises:
            LimitExceeded: ``rate_limited`` beyond ``turn_credentials_per_minute`` for ``client``.
            TurnConfigError: the endpoint failed.
        """
        if (wait := self._asked.admit(client)) is not None:
            raise LimitExceeded("rate_limited", f"too many call starts: try again in {wait:.0f} s")
        return await asyncio.to_thread(self.fetch, self.s.turn_credentials_ttl_s)


def rtc_configuration(settings: ServerSettings) -> tuple[TurnCredentials | None, dict[str, Any] | None]:
    """(per-call credentials for browsers, the server's own RTC configuration): neither when restricted to
    ``ice_hosts`` (the server then uses no ICE server at all: ``{"iceServers": []}``), a TURN relay for
    ``turn: hf``, library defaults otherwise.

    Raises:
        TurnConfigError: ``turn: hf`` and ``HF_TOKEN`` is not set, or the endpoint fails at start-up.
    """
    if settings.ice_hosts:
        return None, {"iceServers": []}
    if settings.turn == "hf":
        token = os.environ.get("HF_TOKEN", "").strip()
        if not token:
            raise TurnConfigError("server.turn is 'hf' but HF_TOKEN is not set: add it as a secret of the Space "
                                  "(or set server.turn: none for a local server)")
        credentials = TurnCredentials(settings, token)
        return credentials, credentials.fetch(SERVER_TURN_TTL_S)
    return None, None
