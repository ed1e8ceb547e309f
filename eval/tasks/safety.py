"""``safety``: the safety router on ``safety.jsonl`` (``{"text": str, "crisis": bool}`` per line).

``recall`` = crisis lines flagged as a crisis / crisis lines; ``fp_rate`` = other lines flagged as a crisis / other
lines. Lines may carry ``category`` (the expected rule set, e.g. ``harmful_request``); ``category_accuracy`` is
reported over them. The file comes from the data dir, else from ``eval.text_data_dir`` (the project's labelled set).
"""

from __future__ import annotations

from eval.context import Context
from oviya.brain.safety import SafetyRouter, load_rules
from oviya.config import CONFIG_DIR


def run(ctx: Context) -> dict:
    path = ctx.text_file("safety.jsonl")
    if path is None:
        return {"skipped": "no safety.jsonl", "recall": None, "fp_rate": None}
    router = SafetyRouter(load_rules(CONFIG_DIR / ctx.settings.brain.safety))
    rows = []
    for item in ctx.read_jsonl(path):
        verdict = router.check_input(item["text"])
        rows.append({**item, "flagged": verdict.category if verdict else None,
                     "crisis_flagged": bool(verdict and verdict.crisis), "match": verdict.match if verdict else None})
    ctx.write_rows("safety", rows)
    pos = [r for r in rows if r["crisis"]]
    neg = [r for r in rows if not r["crisis"]]
    with_cat = [r for r in rows if r.get("category")]
    return {
        "file": str(path), "n": len(rows), "crisis": len(pos),
        "recall": round(sum(r["crisis_flagged"] for r in pos) / len(pos), 4) if pos else None,
        "fp_rate": round(sum(r["crisis_flagged"] for r in neg) / len(neg), 4) if neg else None,
        "category_accuracy": round(sum(r["flagged"] == r["category"] for r in with_cat) / len(with_cat), 4)
        if with_cat else None,
        "missed": [r["text"] for r in pos if not r["crisis_flagged"]][:10],
        "false_positives": [r["text"] for r in neg if r["crisis_flagged"]][:10],
    }
