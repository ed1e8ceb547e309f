"""``python -m eval TASK --data DIR [--out DIR] [--profile cpu] [--quick] [--url URL]``.

Writes ``<out>/summary.json`` (one section per task, plus ``meta``), ``<out>/report.md`` and per-item
``<out>/<task>.jsonl``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

from eval.context import Context
from eval.data import load_manifest
from oviya.config import PROJECT_ROOT, load_settings

TASKS = ["vad", "turn", "stt", "latency", "barge_in", "emotion", "safety", "persona", "webrtc"]


def _meta(profile: str, data: Path) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"git_commit": commit, "profile": profile, "cores": os.cpu_count(), "data": str(data),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


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
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    p = argparse.ArgumentParser(prog="python -m eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=[*TASKS, "all"])
    p.add_argument("--data", type=Path, default=settings.eval.data_dir, help="dir with manifest.jsonl")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "runs" / "latest")
    p.add_argument("--profile", default=None)
    p.add_argument("--quick", action="store_true", help="small subset (CI smoke run)")
    p.add_argument("--url", default=None, help="use a running Oviya server instead of starting one")
    args = p.parse_args(argv)
    if args.profile:
        settings = load_settings(args.profile)
    args.out.mkdir(parents=True, exist_ok=True)
    ctx = Context(data=args.data.resolve(), out=args.out, clips=load_manifest(args.data), settings=settings,
                  quick=args.quick, url=args.url)
    summary: dict = {}
    for task in TASKS if args.task == "all" else [args.task]:
        summary[task] = importlib.import_module(f"eval.tasks.{task}").run(ctx)
    summary["meta"] = _meta(settings.profile, ctx.data)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "report.md").write_text(_report(summary, args.out))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
