"""ICE configuration: loopback-only WebRTC for tests, or a TURN relay for hosts behind NAT (Hugging Face Spaces).

aioice leaves 127.0.0.1 out of its host candidates and aiortc falls back to a public STUN server when no ICE
servers are configured. With ``server.ice_hosts`` set (env ``OVIYA_ICE_HOSTS=127.0.0.1``) both are replaced:
candidates come only from the listed addresses and no ICE server is used.

With ``server.turn: hf`` the browser fetches short-lived TURN credentials per call through FastRTC's Hugging Face
TURN endpoint (``HF_TOKEN``, as FastRTC's Spaces deployment guide does), and the server takes one long-lived set at
start-up.
"""

from __future__ import annotations

import os
from typing import Any

SERVER_TURN_TTL_S = 360_000  # FastRTC's deployment guide: the server's credentials outlive any call


class TurnConfigError(RuntimeError):
    """``server.turn: hf`` without ``HF_TOKEN``."""


def restrict_ice_hosts(hosts: list[str]) -> None:
    """Make every aioice connection in this process gather host candidates only from ``hosts``."""
    import aioice.ice

    allowed = list(hosts)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(allowed)


def rtc_configuration(hosts: list[str], turn: str = "none") -> tuple[Any, dict[str, Any] | None]:
    """RTCConfiguration for (browser, server): none when restricted to ``hosts``, a TURN relay for ``turn="hf"``,
    library defaults otherwise.

    Raises:
        TurnConfigError: ``turn="hf"`` and ``HF_TOKEN`` is not set.
    """
    if hosts:
        return {"iceServers": []}, {"iceServers": []}
    if turn == "hf":
        from fastrtc import get_cloudflare_turn_credentials, get_cloudflare_turn_credentials_async

        if not os.environ.get("HF_TOKEN"):
            raise TurnConfigError("server.turn is 'hf' but HF_TOKEN is not set: add it as a secret of the Space "
                                  "(or set server.turn: none for a local server)")
        return get_cloudflare_turn_credentials_async, get_cloudflare_turn_credentials(ttl=SERVER_TURN_TTL_S)
    return None, None
