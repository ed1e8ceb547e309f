"""Running eval tasks: one :class:`~eval.context.Context` per run, one ``summary.json`` section per task.

Used by ``python -m eval`` and by the notebooks (so no eval logic lives in notebook cells).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from eval.context import Context
from eval.data import load_manifest
from oviya.config import CONFIG_DIR, PROJECT_ROOT, Settings, load_settings
from oviya.tuning import nested

# `all` runs these, in this order (webrtc and load last: they start their own server processes).
TASKS = ["vad", "turn", "stt", "latency", "barge_in", "emotion", "tts_style", "safety", "persona", "dialogue", "avatar",
         "webrtc", "load"]


# Run only when named (not by `all`): a benchmark of the GPU voice, meant for a GPU host; the LLM's prompt cache.
BENCHMARKS = ["csm_bench", "prompt_cache"]

# Tasks that run an interleaved A/B (--ab): latency (a profile or key=value overrides), load and webrtc (a profile;
# webrtc also a running server's URL).
AB_TASKS = ["latency", "load", "webrtc"]

# Tasks whose per-item work runs on Ray workers with --ray (eval/cluster.py).
RAY_TASKS = ["stt", "vad", "safety"]


# The summary.json keys every run carries (null when not measured), per task.
CONTRACT = {
    "vad": ["roc_auc", "f1", "best_threshold"],
    "turn": ["eot_delay_ms_p50", "cutoff_rate"],
    "stt": ["wer", "rtf"],
    "latency": ["v2v_ms_p50", "v2v_ms_p95", "stt_ms_p50", "llm_ttft_ms_p50", "tts_ttfb_ms_p50"],
    "barge_in": ["stop_ms_p95", "false_rate"],
    "emotion": ["accuracy", "chance"],
    "tts_style": ["ordering_ok"],
    "safety": ["recall", "fp_rate"],
    "persona": ["short_rate", "plain_text_rate", "emotion_label_accuracy"],
    "dialogue": ["check_rate", "ttft_ms_p50"],
    "webrtc": ["v2v_ms_p50", "v2v_ms_p95"],
    "load": ["by_n", "leak"],
    "avatar": ["drift_ms_p95", "mouth_audio_corr", "fps"],
    "csm_bench": ["variants"],
    "prompt_cache": ["cached_ttft_ms_p50", "uncached_ttft_ms_p50", "paired_ratio"],
}


def _meta(profile: str, data: Path) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"git_commit": commit, "profile": profile, "cores": os.cpu_count(), "data": str(data),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _report(summary: dict, out: Path) -> str:
    lines = ["# Oviya eval report", ""]
    for section, values in summary.items():
        lines += [f"## {section}", "", "| key | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in _flatten(values).items()]
        lines += [""] + [f"![{p.stem}]({p.name})" for p in sorted(out.glob(f"{section}*.png"))] + [""]
        if (out / f"{section}.md").is_file():  # a task's own section for a human read (dialogue: every reply)
            lines += [(out / f"{section}.md").read_text()]
    return "\n".join(lines)


def make_context(data: Path | None = None, out: Path | None = None, profile: str | None = None, quick: bool = False,
                 url: str | None = None, ab: str | None = None, options: dict | None = None,
                 ray: str | None = None) -> Context:
    """A run's context: ``data`` defaults to ``eval.data_dir``, ``out`` to ``runs/latest`` (created); ``ab``: the
    B side of an A/B run (:func:`ab_settings`); ``options``: a task's own (``csm_bench``: size, device, frames);
    ``ray``: run the per-item work of :data:`RAY_TASKS` on Ray (``local``, ``auto`` or an address). An ``ab`` that
    starts with ``http://`` or ``https://`` is a running server (``ab_url``), e.g. an older commit's ``app.py``.

    Raises:
        FileNotFoundError: an unknown profile. ValueError, pydantic.ValidationError: a bad ``ab`` override.
    """
    settings = load_settings(profile)
    data = Path(data or settings.eval.data_dir).resolve()
    out = Path(out or PROJECT_ROOT / "runs" / "latest")
    out.mkdir(parents=True, exist_ok=True)
    ab_url = ab if ab and ab.startswith(("http://", "https://")) else None
    return Context(data=data, out=out, clips=load_manifest(data), settings=settings, quick=quick, url=url,
                   ab=ab_settings(ab, settings.profile) if ab and not ab_url else None, ab_spec=ab, ab_url=ab_url,
                   options=options or {}, ray=ray)


def ab_settings(spec: str, profile: str) -> Settings:
    """The B side of an A/B run: a profile name (``config/profiles/<spec>.yaml``), or ``key=value`` overrides of
    ``profile`` joined by commas, keys dotted by section, values read as YAML scalars (e.g.
    ``turn.mode=vad_only,stt.speculative_after_ms=null``).

    Raises:
        ValueError: neither a profile nor ``key=value`` pairs. pydantic.ValidationError: an unknown key or a bad value.
    """
    if (CONFIG_DIR / "profiles" / f"{spec}.yaml").is_file():
        return load_settings(spec)
    changes: dict = {}
    for pair in spec.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--ab {spec!r}: not a profile, and {pair!r} is not key=value")
        changes[key.strip()] = yaml.safe_load(value)
    return load_settings(profile, **nested(changes))


def run_tasks(ctx: Context, tasks: list[str]) -> dict:
    """Run ``tasks`` (names from :data:`TASKS` and :data:`BENCHMARKS`) in order; write and return the summary (one section each + meta).

    Tasks start their own asyncio loops; called where a loop already runs (a Jupyter cell), they run in a worker
    thread while the caller waits.

    Raises:
        ValueError: an unknown task name, an A/B run of a task not in :data:`AB_TASKS` (of ``load``/``webrtc``: not
            a profile; ``webrtc`` also takes a running server's URL), or a Ray run of a task not in :data:`RAY_TASKS`.
    """
    if unknown := [t for t in tasks if t not in TASKS + BENCHMARKS]:
        raise ValueError(f"unknown eval task(s) {unknown}; known: {TASKS + BENCHMARKS}")
    if ctx.ab_spec is not None and (len(tasks) != 1 or tasks[0] not in AB_TASKS):
        raise ValueError(f"an A/B run (--ab) is for one of {', '.join(AB_TASKS)}")
    if ctx.ab is not None and tasks[0] in ("load", "webrtc") and ctx.ab_spec != ctx.ab.profile:
        raise ValueError(f"{tasks[0]} --ab takes a profile (each side is its own app.py), not key=value overrides")
    if ctx.ab_url is not None and tasks != ["webrtc"]:
        raise ValueError("--ab URL (a running server as B) is for webrtc; latency and load take a profile")
    if ctx.ray is not None and (other := [t for t in tasks if t not in RAY_TASKS]):
        raise ValueError(f"--ray runs {', '.join(RAY_TASKS)}; not {', '.join(other)}")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run(ctx, tasks)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_run, ctx, tasks).result()


def _run(ctx: Context, tasks: list[str]) -> dict:
    summary: dict = {}
    try:
        for task in tasks:
            section = importlib.import_module(f"eval.tasks.{task}").run(ctx)
            summary[task] = {**dict.fromkeys(CONTRACT[task]), **section}
    finally:
        ctx.close()
    summary["meta"] = {**_meta(ctx.settings.profile, ctx.data), "ray": ctx.ray}
    (ctx.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (ctx.out / "report.md").write_text(_report(summary, ctx.out))
    return summary
