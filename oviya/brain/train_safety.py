"""Retrain the safety router's semantic layer: MPNet's LoRA adapters and the head, on the project's labelled set.

    python -m oviya.brain.train_safety

Writes ``oviya/brain/safety_adapter/`` and ``oviya/brain/safety_head.json`` from ``tests/data/safety.jsonl`` with the
recipe in ``semantic.tuning`` of the configured safety file (~18 min on 2 cores for ~3000 lines). Run it after editing
either; a test fails while the shipped head is stale. A module of its own because it needs both the rules file's
loader (:mod:`oviya.brain.safety`) and the semantic layer that module imports.
"""

from __future__ import annotations

import json

from oviya.assets import sha256_file
from oviya.brain.safety import load_rules
from oviya.brain.semantic_safety import ADAPTER_DIR, HEAD_FILE, TRAINING_DATA, fit
from oviya.config import CONFIG_DIR, load_settings


def main() -> None:
    settings = load_settings()
    tuning = load_rules(CONFIG_DIR / settings.brain.safety).semantic.tuning
    rows = [json.loads(line) for line in TRAINING_DATA.read_text().splitlines() if line.strip()]
    _, head = fit(rows, settings.cache_dir, tuning, ADAPTER_DIR, sha256_file(TRAINING_DATA))
    head.save()
    print(f"trained on {len(rows)} lines of {TRAINING_DATA.name} -> {ADAPTER_DIR.name}/, {HEAD_FILE.name}")


if __name__ == "__main__":
    main()
