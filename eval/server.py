"""Starting ``python app.py`` and ``python -m oviya.serve`` on loopback for tasks (and tests) that talk to them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppProcess:
    """A running ``app.py`` or ``oviya.serve``: its base URL and process (tests may stop it)."""

    url: str
    proc: subprocess.Popen


@contextmanager
def local_app(log_path: Path, startup_timeout_s: float = 180.0, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``python app.py --host 127.0.0.1 --port N`` with WebRTC restricted to loopback (``OVIYA_ICE_HOSTS``)
    and yield its base URL once ``GET /health`` answers.

    Raises:
        RuntimeError: the app exited or did not become healthy (the message ends with its log).
    """
    with app_process(log_path, startup_timeout_s, env) as app:
        yield app.url


@contextmanager
def app_process(log_path: Path, startup_timeout_s: float = 180.0,
                env: dict[str, str] | None = None) -> Iterator[AppProcess]:
    """:func:`local_app`, yielding the :class:`AppProcess`. ``env`` is added to this process's environment."""
    port = free_port()
    with _process(["app.py", "--host", "127.0.0.1", "--port", str(port)], f"http://127.0.0.1:{port}", "/health",
                  log_path, startup_timeout_s, {"OVIYA_ICE_HOSTS": "127.0.0.1", **(env or {})}) as app:
        yield app


@contextmanager
def serve_process(log_path: Path, profile: str | None = None, startup_timeout_s: float = 240.0,
                  env: dict[str, str] | None = None) -> Iterator[AppProcess]:
    """``python -m oviya.serve`` (a local Ray instance, the models as Ray Serve deployments) on a free loopback port;
    yields it once ``GET /v1/models`` answers; its ``url`` ends in ``/v1`` (what ``base_url`` settings take).
    Stopped with SIGTERM (Serve and Ray shut down), killed after 60 s."""
    port = free_port()
    argv = ["-m", "oviya.serve", *(["--profile", profile] if profile else [])]
    with _process(argv, f"http://127.0.0.1:{port}/v1", "/models", log_path, startup_timeout_s,
                  {"OVIYA_SERVE__HOST": "127.0.0.1", "OVIYA_SERVE__PORT": str(port), **(env or {})},
                  stop_timeout_s=60.0) as service:
        yield service


@contextmanager
def _process(argv: list[str], url: str, ready_path: str, log_path: Path, startup_timeout_s: float,
             env: dict[str, str], stop_timeout_s: float = 15.0) -> Iterator[AppProcess]:
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, *argv], cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=log,
                                stderr=subprocess.STDOUT)
    name = " ".join(argv[:2])
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{Path(log_path).read_text()[-3000:]}")
            try:
                if httpx.get(url + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {startup_timeout_s} s:\n{Path(log_path).read_text()[-3000:]}")
            time.sleep(0.5)
        yield AppProcess(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(stop_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
