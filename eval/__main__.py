"""``python -m eval TASK --data DIR [--out DIR] [--profile cpu] [--quick] [--url URL] [--ab PROFILE|KEY=VALUE,...]``.

Writes ``<out>/summary.json`` (one section per task, plus ``meta``), ``<out>/report.md`` (tables and plots) and
per-item ``<out>/<task>.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eval.runner import TASKS, make_context, run_tasks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=[*TASKS, "all"])
    p.add_argument("--data", type=Path, default=None, help="dir with manifest.jsonl (default: eval.data_dir)")
    p.add_argument("--out", type=Path, default=None, help="output dir (default: runs/latest)")
    p.add_argument("--profile", default=None, help="config/profiles/<name>.yaml (default: OVIYA_PROFILE or cpu)")
    p.add_argument("--quick", action="store_true", help="small subset (CI smoke run)")
    p.add_argument("--url", default=None, help="use a running Oviya server instead of starting one")
    p.add_argument("--ab", default=None, metavar="PROFILE|KEY=VALUE,...",
                   help="latency only: interleave this configuration (B) with the run's (A) on every clip and report "
                        "paired B/A ratios, e.g. --ab turn.mode=vad_only")
    args = p.parse_args(argv)
    if args.ab and args.task != "latency":
        p.error("an A/B run (--ab) is for the latency task alone")
    try:
        ctx = make_context(args.data, args.out, args.profile, args.quick, args.url, args.ab)
    except (ValueError, FileNotFoundError) as e:  # pydantic's ValidationError is a ValueError
        p.error(str(e))
    summary = run_tasks(ctx, TASKS if args.task == "all" else [args.task])
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
