"""Starting ``python app.py`` on loopback for tasks (and tests) that talk to the real server."""

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
    """A running ``app.py``: its base URL and process (tests may kill it)."""

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
    full_env = {**os.environ, "OVIYA_ICE_HOSTS": "127.0.0.1", **(env or {})}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=PROJECT_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}:\n{Path(log_path).read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py not healthy after {startup_timeout_s} s:\n{Path(log_path).read_text()[-3000:]}")
            time.sleep(0.5)
        yield AppProcess(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
