"""The eval harness as users run it: ``python -m eval all --quick`` on a copy of the eval audio in another directory
(the code must not depend on where the data lives), and every task on a directory without data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nbformat
import pytest

from eval.runner import CONTRACT, TASKS, make_context, run_tasks
from oviya.config import PROJECT_ROOT


@pytest.mark.timeout(1800)  # ~4 min here: every task on a small subset, the webrtc task with its own server
def test_all_quick_on_a_copy_of_the_data_reports_every_contract_key(settings, tmp_path):
    data = tmp_path / "my data"  # a space in the path, too
    shutil.copytree(settings.eval.data_dir, data)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "eval", "all", "--quick", "--data", str(data), "--out", str(out)],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1500,
                         check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {*TASKS, "meta"} and summary["meta"]["data"] == str(data.resolve())
    for task, keys in CONTRACT.items():
        assert set(keys) <= set(summary[task]), task
        assert "skipped" not in summary[task], (task, summary[task])
    assert summary["safety"]["in_sample"] and summary["safety"]["cv"]["recall"] >= 0.75  # cross-validated
    assert summary["stt"]["wer"] < 0.5
    report = (out / "report.md").read_text()
    assert "## latency" in report and "latency_cdf.png" in report
    for plot in ("vad_roc.png", "vad_threshold_sweep.png", "latency_cdf.png", "stt_wer_per_clip.png",
                 "emotion_confusion.png", "tts_style.png"):
        assert (out / plot).stat().st_size > 1000, plot


def test_audio_tasks_without_data_are_skipped_with_nulls(tmp_path):
    ctx = make_context(data=tmp_path / "empty", out=tmp_path / "out", quick=True)
    audio_tasks = ["vad", "turn", "stt", "latency", "barge_in", "emotion", "webrtc"]
    summary = run_tasks(ctx, audio_tasks)
    for task in audio_tasks:
        assert "skipped" in summary[task] and all(summary[task][k] is None for k in CONTRACT[task]), task


def test_notebooks_are_committed_without_outputs():
    for path in sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), path.name
