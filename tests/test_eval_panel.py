"""The page's eval runs (oviya/server/eval_panel.py): a real ``python -m eval`` subprocess, stopped for good when the
user cancels or the time limit passes, its progress followed from tqdm."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from oviya.server.eval_panel import run_eval


def eval_processes(out_prefix: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", out_prefix], capture_output=True, text=True, check=False).stdout
    return [line for line in found.splitlines() if "-m eval" in line]


def test_a_cancelled_or_overdue_run_is_killed_and_a_finished_one_reports_progress(settings):
    seen: list[float] = []

    def progress(fraction: float, desc: str = "") -> None:
        seen.append(fraction)

    async def cancelled() -> None:
        task = asyncio.create_task(run_eval("latency", settings.eval.data_dir, True, 600, progress))
        await asyncio.sleep(2)
        assert eval_processes("oviya-eval-latency-")  # running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    assert not eval_processes("oviya-eval-latency-")  # killed, not left running beside the calls
    with pytest.raises(TimeoutError):
        asyncio.run(run_eval("vad", settings.eval.data_dir, True, 1.0, progress))
    assert not eval_processes("oviya-eval-vad-")
    out = asyncio.run(run_eval("turn", settings.eval.data_dir, True, 300, progress))
    assert (out / "summary.json").is_file() and "## turn" in (out / "report.md").read_text()
    assert seen and seen[-1] == 1.0  # tqdm's last line: every clip done
