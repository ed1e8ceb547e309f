"""``python -m eval TASK --ray``: the per-item work of stt, vad and safety on the workers of a local Ray instance
(loopback, dashboard off; eval/cluster.py) gives the same results as the run in one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from oviya.config import PROJECT_ROOT, Settings


def run_eval(task: str, data: Path, out: Path, *extra: str) -> dict:
    run = subprocess.run([sys.executable, "-m", "eval", task, "--data", str(data), "--out", str(out), *extra],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def rows(out: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{task}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("task", ["stt", "vad"])
def test_stt_and_vad_on_ray_workers_give_the_same_results(settings: Settings, tmp_path, task):
    here = run_eval(task, settings.eval.data_dir, tmp_path / "here", "--quick")
    on_ray = run_eval(task, settings.eval.data_dir, tmp_path / "ray", "--quick", "--ray")
    assert here["meta"]["ray"] is None and on_ray["meta"]["ray"] == "local"
    if task == "stt":
        assert on_ray["stt"]["wer"] == here["stt"]["wer"] and on_ray["stt"]["clips"] == 5
        assert [r["hypothesis"] for r in rows(tmp_path / "ray", "stt")] == \
               [r["hypothesis"] for r in rows(tmp_path / "here", "stt")]
    else:
        for key in ("roc_auc", "f1", "cutoff_rate", "best", "chunks"):
            assert on_ray["vad"][key] == here["vad"][key], key
        assert rows(tmp_path / "ray", "vad") == rows(tmp_path / "here", "vad")  # the whole sweep


@pytest.mark.timeout(600)  # ~160 s here: the file's every 8th line, mixed and in-conversation turns, twice
def test_safety_on_ray_workers_gives_the_same_verdicts(settings: Settings, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    lines = (settings.eval.text_data_dir / "safety.jsonl").read_text().splitlines()
    # ~120 lines across the file's kinds (it is grouped by kind; the stride keeps this test near two minutes as the
    # set grows); not in-sample: no CV
    (data / "safety.jsonl").write_text("\n".join(lines[:: max(1, len(lines) // 120)]) + "\n")
    here = run_eval("safety", data, tmp_path / "here")["safety"]
    on_ray = run_eval("safety", data, tmp_path / "ray", "--ray")["safety"]
    for key in ("n", "recall", "fp_rate", "recall_by_kind", "fp_rate_by_kind", "rules_only", "mixed_turns", "missed"):
        assert on_ray[key] == here[key], key
    def verdicts(out: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "check_ms"} for r in rows(out, "safety")]  # a time, not a verdict

    assert verdicts(tmp_path / "ray") == verdicts(tmp_path / "here")
    assert all(r["check_ms"] > 0 for r in rows(tmp_path / "ray", "safety"))


def test_ray_is_refused_for_tasks_it_does_not_run(tmp_path):
    run = subprocess.run([sys.executable, "-m", "eval", "latency", "--ray", "--out", str(tmp_path)],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2 and "--ray runs stt, vad, safety" in run.stderr
