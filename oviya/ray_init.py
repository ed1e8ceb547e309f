"""Joining Ray, for the Serve application (``python -m oviya.serve``) and eval runs (``python -m eval --ray``)."""

from __future__ import annotations

import os
from typing import Any

from oviya.config import PROJECT_ROOT


def init_ray(address: str | None, **options: Any) -> None:
    """``ray.init``: ``address`` None starts a local instance bound to loopback with the dashboard off; ``auto`` or
    ``ray://HOST:PORT`` joins a cluster. Workers import this project from its root (on a cluster, every node needs
    it at the same path). ``options`` go to ``ray.init`` as they are."""
    import ray

    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    local = {"include_dashboard": False, "_node_ip_address": "127.0.0.1"} if address is None else {}
    ray.init(address=address, runtime_env={"env_vars": {"PYTHONPATH": path}}, **local, **options)
