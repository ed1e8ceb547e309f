"""Small summary statistics used by every task's report."""

from __future__ import annotations

import numpy as np


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation) rounded to 0.1, or None for no values."""
    vals = [v for v in values if v is not None]
    return round(float(np.percentile(vals, q)), 1) if vals else None


def paired_ratios(rows: list[dict], keys: tuple[str, ...]) -> dict[str, float | None]:
    """An A/B run's figure of merit: per key, the median over items (``file``) of B's value / A's, rounded to 0.001
    (None without a pair); ``rows`` carry ``config`` ("A" or "B"), ``file`` and the keys."""
    a = {r["file"]: r for r in rows if r["config"] == "A"}
    b = {r["file"]: r for r in rows if r["config"] == "B"}
    ratios = {}
    for key in keys:
        pairs = [b[f][key] / a[f][key] for f in a if f in b and a[f].get(key) and b[f].get(key)]
        ratios[key] = round(float(np.median(pairs)), 3) if pairs else None
    return ratios


TIMING_STAGES = ("eot_delay_ms", "stt_ms", "llm_ttft_ms", "first_clause_ms", "tts_ttfb_ms", "v2v_ms")


def timing_table(records: list) -> list[list]:
    """Rows ``[stage, n, p50, p95]`` (ms) over the turns of ``records`` (``TurnRecord``s) that have each stage."""
    rows = []
    for stage in TIMING_STAGES:
        values = [v for r in records if (v := r.timings()[stage]) is not None]
        rows.append([stage, len(values), percentile(values, 50), percentile(values, 95)])
    return rows
