"""``python -m eval TASK --data DIR [--out DIR] [--profile cpu] [--quick] [--url URL] [--ab PROFILE|KEY=VALUE,...|URL]
[--ray [auto|ADDRESS]]``;
``python -m eval csm_bench [--size tiny|full] [--device cpu|cuda] [--frames N]`` (a GPU benchmark, not in ``all``);
``python -m eval prompt_cache`` (the LLM's first token with and without the persona prompt cached, not in ``all``).

Writes ``<out>/summary.json`` (one section per task, plus ``meta``), ``<out>/report.md`` (tables and plots) and
per-item ``<out>/<task>.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eval.runner import AB_TASKS, BENCHMARKS, RAY_TASKS, TASKS, make_context, run_tasks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=[*TASKS, "all", *BENCHMARKS])
    p.add_argument("--data", type=Path, default=None, help="dir with manifest.jsonl (default: eval.data_dir)")
    p.add_argument("--out", type=Path, default=None, help="output dir (default: runs/latest)")
    p.add_argument("--profile", default=None, help="config/profiles/<name>.yaml (default: OVIYA_PROFILE or cpu)")
    p.add_argument("--quick", action="store_true", help="small subset (CI smoke run)")
    p.add_argument("--url", default=None, help="use a running Oviya server instead of starting one")
    p.add_argument("--ab", default=None, metavar="PROFILE|KEY=VALUE,...|URL",
                   help="latency: interleave this configuration (B) with the run's (A) on every clip and report "
                        "paired B/A ratios, e.g. --ab turn.mode=vad_only; load, webrtc: a profile, each side its own "
                        "server; webrtc also a running server's URL (e.g. an older commit's app.py)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="auto|ADDRESS",
                   help=f"run the per-item work on Ray workers ({', '.join(RAY_TASKS)}): a local instance, or a "
                        "cluster (auto, ray://HOST:PORT)")
    p.add_argument("--size", choices=["tiny", "full"], default=None, help="csm_bench: model size (default tiny)")
    p.add_argument("--device", default=None, help="csm_bench: torch device, e.g. cuda (default cpu)")
    p.add_argument("--frames", type=int, default=None, help="csm_bench: frames per clause (default 25 = 2 s)")
    args = p.parse_args(argv)
    if args.ab and args.task not in AB_TASKS:
        p.error(f"an A/B run (--ab) is for one of {', '.join(AB_TASKS)}")
    options = {k: v for k, v in {"size": args.size, "device": args.device, "frames": args.frames}.items()
               if v is not None}
    if args.ray and args.task not in RAY_TASKS:
        p.error(f"--ray runs {', '.join(RAY_TASKS)}")
    if options and args.task != "csm_bench":
        p.error("--size, --device and --frames are csm_bench's options")
    if args.frames is not None and args.frames < 1:
        p.error("--frames must be at least 1")
    try:
        ctx = make_context(args.data, args.out, args.profile, args.quick, args.url, args.ab, options, args.ray)
    except (ValueError, FileNotFoundError) as e:  # pydantic's ValidationError is a ValueError
        p.error(str(e))
    try:
        summary = run_tasks(ctx, TASKS if args.task == "all" else [args.task])
    except ValueError as e:  # e.g. a Ray instance with fewer CPUs than eval.ray.cpus_per_trial
        p.error(str(e))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
