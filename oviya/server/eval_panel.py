"""Evaluate from the page: one of the audio eval tasks on the shared eval audio or on the page's recorded call.

A run is ``python -m eval TASK --data DIR --out OUT [--quick]`` in a subprocess at low priority (``nice``): its own
models, killable at once when the user cancels or ``eval.page_timeout_s`` passes, and live calls keep the CPU's
first claim. At most ``eval.page_runs`` run at once (0 hides the panel). The progress bar follows the task's tqdm
lines; the result is the run's ``report.md`` and its plots. The data directory is chosen on the server from two
names (never a path from the browser): the shared set (``eval.data_dir``) or this page's own recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from oviya.config import PROJECT_ROOT, Settings
from oviya.recording import CallRecording

TASKS = ("stt", "vad", "turn", "latency", "barge_in")
SHARED, RECORDED = "shared eval audio", "my recorded call"
NICE = 10  # below the live calls
_PROGRESS = re.compile(r"(\d+)/(\d+) \[")  # tqdm's "n/total [elapsed<left, rate]"


async def run_eval(task: str, data: Path, quick: bool, timeout_s: float, progress: gr.Progress) -> Path:
    """Run one eval task in a subprocess; the output directory (``report.md``, plots, ``summary.json``).

    Raises:
        RuntimeError: the run failed (the message ends with its stderr). TimeoutError: it ran past ``timeout_s``.
        asyncio.CancelledError: the user cancelled (the subprocess is killed).
    """
    out = Path(tempfile.mkdtemp(prefix=f"oviya-eval-{task}-"))
    cmd = ["nice", "-n", str(NICE), sys.executable, "-m", "eval", task, "--data", str(data), "--out", str(out)]
    proc = await asyncio.create_subprocess_exec(*cmd, *(["--quick"] if quick else []), cwd=PROJECT_ROOT,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    tail = b""
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await proc.stderr.read(4096):
                tail = (tail + chunk)[-8000:]
                if found := _PROGRESS.findall(chunk.decode(errors="replace")):
                    done, total = map(int, found[-1])
                    progress(done / max(total, 1), desc=f"{task}: {done}/{total}")
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"eval {task} failed (exit {proc.returncode}): {tail.decode(errors='replace')[-1500:]}")
    return out


def eval_panel(settings: Settings, recording: gr.State) -> None:
    """Build the panel inside the current Blocks context (nothing when ``eval.page_runs`` is 0)."""
    if settings.eval.page_runs == 0:
        return
    with gr.Accordion("Evaluate", open=False):
        with gr.Row():
            dataset = gr.Dropdown([SHARED, RECORDED], value=SHARED, label="Data")
            task = gr.Dropdown(list(TASKS), value="stt", label="Task")
            quick = gr.Checkbox(True, label="Quick (a small subset)")
        with gr.Row():
            run = gr.Button("Run", variant="primary")
            cancel = gr.Button("Cancel")
        report = gr.Markdown()
        plots = gr.Gallery(label="Plots", columns=2, height="auto", object_fit="contain")

    async def evaluate(data_name: str, task_name: str, small: bool, rec: CallRecording | None,
                       progress: gr.Progress = gr.Progress()) -> tuple[Any, Any]:  # noqa: B008 - Gradio's injection
        if task_name not in TASKS or data_name not in (SHARED, RECORDED):
            raise gr.Error("unknown task or data set")
        if data_name == SHARED:
            data = settings.eval.data_dir
        elif rec is None or not (rec.dir / "manifest.jsonl").is_file():
            raise gr.Error("this page has no recorded call yet: tick 'Record my call', talk, then run")
        else:
            data = rec.dir
        progress(0, desc=f"{task_name}: loading the models")
        try:
            out = await run_eval(task_name, data, small, settings.eval.page_timeout_s, progress)
        except TimeoutError:
            raise gr.Error(f"the run passed eval.page_timeout_s ({settings.eval.page_timeout_s:.0f} s)") from None
        except RuntimeError as e:
            raise gr.Error(str(e)) from None
        text = (out / "report.md").read_text()
        text = "\n".join(line for line in text.splitlines() if not line.startswith("!["))  # the plots go below
        return text, [str(p) for p in sorted(out.glob("*.png"))]

    event = run.click(evaluate, inputs=[dataset, task, quick, recording], outputs=[report, plots],
                      concurrency_limit=settings.eval.page_runs, concurrency_id="eval")
    cancel.click(None, cancels=[event])
