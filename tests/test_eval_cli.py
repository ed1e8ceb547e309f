"""The eval harness as users run it: ``python -m eval all --quick`` on a copy of the eval audio in another directory
(the code must not depend on where the data lives), and every task on a directory without data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nbformat
import pytest
from pydantic import ValidationError

from eval.runner import CONTRACT, TASKS, ab_settings, make_context, run_tasks
from oviya.config import PROJECT_ROOT, load_settings


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
    for task in TASKS:
        assert set(CONTRACT[task]) <= set(summary[task]), task
        assert "skipped" not in summary[task], (task, summary[task])
    assert summary["safety"]["in_sample"] and summary["safety"]["cv"]["recall"] >= 0.75  # cross-validated
    mixed = summary["safety"]["cv"]["mixed_turns"]  # a crisis line beside an everyday one, each test fold's own
    assert mixed["n"] > 0 and mixed["recall"] >= 0.75 and summary["safety"]["mixed_turns"]["recall"] >= 0.75
    assert summary["stt"]["wer"] < 0.5
    report = (out / "report.md").read_text()
    assert "## latency" in report and "latency_cdf.png" in report and "latency_waterfall.png" in report
    assert summary["latency"]["v2v_ms_p95"] is not None and summary["latency"]["llm_ttft_ms_p95"] is not None
    assert summary["webrtc"]["client_path_ms_p50"] is not None and summary["webrtc"]["llm_ttft_ms_p95"] is not None
    assert summary["webrtc"]["inbound_ms_p50"] is not None and summary["webrtc"]["outbound_ms_p50"] is not None
    assert summary["latency"]["preempt_reused_rate"] is not None  # the default profile prepares replies in pauses
    assert sum(summary["latency"]["routes"].values()) == summary["latency"]["answered"]  # safety turns show
    assert [p["min_silence_ms"] for p in summary["turn"]["sweep"]] == [200, 800]  # --quick: the curve's two ends
    for plot in ("vad_roc.png", "vad_threshold_sweep.png", "latency_cdf.png", "latency_waterfall.png",
                 "webrtc_waterfall.png", "turn_curve.png",
                 "stt_wer_per_clip.png",
                 "emotion_confusion.png", "tts_style.png"):
        assert (out / plot).stat().st_size > 1000, plot


@pytest.mark.timeout(600)
def test_a_latency_ab_run_interleaves_both_configurations_and_reports_paired_ratios(settings, tmp_path):
    out = tmp_path / "ab"
    run = subprocess.run([sys.executable, "-m", "eval", "latency", "--quick", "--out", str(out),
                          "--ab", "stt.speculative_after_ms=null"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=540, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())["latency"]
    rows = [json.loads(line) for line in (out / "latency.jsonl").read_text().splitlines()]
    assert [r["config"] for r in rows[:4]] == ["A", "B", "B", "A"]  # the order alternates clip by clip
    assert [r["file"] for r in rows[::2]] == [r["file"] for r in rows[1::2]]  # both sides hear the same clips
    assert summary["pairs"] == len(rows) // 2 and summary["paired_ratio"]["v2v_ms"] > 0
    assert summary["A"]["stt_reused_rate"] > 0 and summary["B"]["stt_reused_rate"] == 0  # B had no speculative STT
    assert summary["B"]["overrides"] == "stt.speculative_after_ms=null"


def test_ab_overrides_are_validated_like_the_yaml(tmp_path):
    b = ab_settings("turn.mode=vad_only,turn.silence_ms=900,stt.speculative_after_ms=null", "cpu-tiny")
    assert (b.turn.mode, b.turn.silence_ms, b.stt.speculative_after_ms) == ("vad_only", 900, None)
    assert ab_settings("cpu", "cpu-tiny").llm.llama_cpp.model != load_settings("cpu-tiny").llm.llama_cpp.model  # a profile
    with pytest.raises(ValueError, match="not key=value"):
        ab_settings("nonsense", "cpu-tiny")
    with pytest.raises(ValidationError):
        ab_settings("turn.silence_ms=-5", "cpu-tiny")
    with pytest.raises(ValidationError):
        ab_settings("turn.no_such_key=1", "cpu-tiny")
    run = subprocess.run([sys.executable, "-m", "eval", "vad", "--out", str(tmp_path), "--ab", "cpu"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode != 0 and "is for one of latency, load" in run.stderr


@pytest.mark.timeout(300)
def test_csm_bench_tiny_on_cpu_times_each_frame_loop_through_the_real_backend(tmp_path):
    """What a GPU host runs with ``--size full --device cuda``; here the tiny random CSM on the CPU (no graphs)."""
    run = subprocess.run([sys.executable, "-m", "eval", "csm_bench", "--size", "tiny", "--device", "cpu",
                          "--frames", "6", "--quick", "--out", str(tmp_path)],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=280, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    bench = json.loads((tmp_path / "summary.json").read_text())["csm_bench"]
    assert set(bench["variants"]) == {"generate", "static"} and bench["frames"] == 6  # graphs: CUDA only
    for figures in bench["variants"].values():
        assert figures["frames"] == 6 and figures["first_audio_ms"] > 0 and figures["rtf"] > 0
        assert figures["ms_per_frame"] > 0 and figures["peak_gpu_mib"] is None
    assert "| static |" in (tmp_path / "report.md").read_text()
    wrong = subprocess.run([sys.executable, "-m", "eval", "vad", "--size", "full", "--out", str(tmp_path)],
                           cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert wrong.returncode != 0 and "csm_bench's options" in wrong.stderr


def test_a_webrtc_ab_run_against_a_running_server_interleaves_calls_and_splits_the_client_path(app_server, tmp_path):
    ctx = make_context(out=tmp_path, quick=True, url=app_server, ab=app_server)  # B: "an older commit's app.py"
    ctx.clips = [c for c in ctx.clips if c.path.name == "test_en.wav"]  # one clip: a call to each side
    summary = run_tasks(ctx, ["webrtc"])["webrtc"]
    rows = [json.loads(line) for line in (tmp_path / "webrtc.jsonl").read_text().splitlines()]
    assert [r["config"] for r in rows] == ["A", "B"] and rows[0]["file"] == rows[1]["file"]
    assert summary["pairs"] == 1 and summary["B"]["server"] == app_server and summary["paired_ratio"]["v2v_ms"] > 0
    for r in rows:  # the client's wait, split on the host's one clock: VAD, in, server, out, quiet start
        parts = r["vad_end_ms"] + r["inbound_ms"] + r["server_v2v_ms"] + r["outbound_ms"] + r["onset_ms"]
        assert r["outbound_ms"] > 0 and abs(parts - r["v2v_ms"]) <= 1.0, r


def test_a_server_url_as_b_is_for_webrtc_only(tmp_path):
    ctx = make_context(out=tmp_path, quick=True, ab="http://127.0.0.1:9")
    assert ctx.ab is None and ctx.ab_url == "http://127.0.0.1:9"
    with pytest.raises(ValueError, match="webrtc"):
        run_tasks(ctx, ["latency"])


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


def test_the_prompt_cache_benchmark_compares_a_warmed_and_a_dropped_kv_state(tmp_path):
    ctx = make_context(out=tmp_path, profile="cpu-tiny", quick=True)
    summary = run_tasks(ctx, ["prompt_cache"])["prompt_cache"]
    rows = [json.loads(line) for line in (tmp_path / "prompt_cache.jsonl").read_text().splitlines()]
    assert [r["config"] for r in rows] == ["A", "B", "B", "A"] and summary["pairs"] == 2
    assert summary["system_prompt_tokens"] > 50 and summary["paired_ratio"] > 0
    assert summary["cached_ttft_ms_p50"] > 0 and summary["uncached_ttft_ms_p50"] > 0
