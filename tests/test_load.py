"""Load test (eval task ``load``) on a real server: N = 1, 2, 4 aiortc clients talking at once, then 50 calls that
connect, speak, and hang up mid-reply, with the server's tasks, threads and RSS compared before and after.
The v2v table is printed and kept in runs/test_artifacts/load/ (speed is reported, not asserted)."""

import json

import pytest

from eval.runner import PROJECT_ROOT, make_context
from eval.tasks import load


@pytest.mark.timeout(1500)
def test_concurrent_calls_are_all_answered_and_50_call_cycles_leak_nothing(settings):
    out = PROJECT_ROOT / "runs" / "test_artifacts" / "load"
    ctx = make_context(data=settings.eval.data_dir, out=out)
    summary = load.run(ctx, levels=(1, 2, 4), cycles=50, rounds=2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    for n, row in summary["by_n"].items():
        assert row["answered"] == row["calls"] == 2 * int(n), (n, row)  # 2 rounds of n calls, every one answered
    leak = summary["leak"]
    assert leak["answered"] == leak["cycles"] == 50
    assert leak["sessions_after"] == 0
    assert leak["tasks_after"] <= leak["tasks_before"], leak
    assert leak["threads_after"] <= leak["threads_before"], leak
    # After the warm-up calls (eval/tasks/load.py WARMUP_CYCLES), RSS creeps ~0.5-1 MB a call, avatar on or off (a
    # known open item: allocator growth, not live objects — tasks and threads return to their start); 50 calls
    # measured +1.3 % to +6.1 % across runs. A leak of the calls' audio or frames would be several MB a call.
    assert leak["rss_growth_pct"] < 8.0, leak


@pytest.mark.timeout(600)
def test_an_ab_load_run_interleaves_two_servers_on_the_same_clips(settings, tmp_path):
    ctx = make_context(data=settings.eval.data_dir, out=tmp_path, ab="cpu-tiny")
    summary = load.run(ctx, levels=(1, 2), rounds=2)
    assert summary["A"]["profile"] == summary["B"]["profile"] == "cpu-tiny" and "leak" not in summary
    for side in ("A", "B"):
        assert {n: row["answered"] for n, row in summary[side]["by_n"].items()} == {"1": 2, "2": 4}
    assert all(summary["paired_ratio"][n] > 0 for n in ("1", "2"))
    rows = [json.loads(line) for line in (tmp_path / "load.jsonl").read_text().splitlines()]
    firsts = [r["config"] for r in rows if r["slot"] == 0]
    assert firsts == ["A", "B", "B", "A", "A", "B", "B", "A"]  # order alternates round by round
    files = {(r["config"], r["n"], r["round"], r["slot"]): r["file"] for r in rows}
    assert all(files[("B", *k[1:])] == f for k, f in files.items() if k[0] == "A")  # the same clip in each slot
    assert (tmp_path / "load_appA.log").is_file() and (tmp_path / "load_appB.log").is_file()
