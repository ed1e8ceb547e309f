"""Restricting WebRTC to given host addresses (loopback-only tests, DESIGN.md).

aioice leaves 127.0.0.1 out of its host candidates and aiortc falls back to a public STUN server when no ICE
servers are configured. With ``server.ice_hosts`` set (env ``OVIYA_ICE_HOSTS=127.0.0.1``) both are replaced:
candidates come only from the listed addresses and no ICE server is used.
"""

from __future__ import annotations

from typing import Any


def restrict_ice_hosts(hosts: list[str]) -> None:
    """Make every aioice connection in this process gather host candidates only from ``hosts``."""
    import aioice.ice

    allowed = list(hosts)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(allowed)


def rtc_configuration(hosts: list[str]) -> dict[str, Any] | None:
    """RTCConfiguration for both peers: no ICE servers when restricted, library defaults otherwise."""
    return {"iceServers": []} if hosts else None
