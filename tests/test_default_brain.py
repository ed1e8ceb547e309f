"""The default cpu profile's brain: Qwen2.5-Coder-1.5B-Instruct assembled from its 22 wheels, and the dialogue eval
on it (a quick subset). The rest of the suite runs on cpu-tiny (tests/conftest.py); this file loads the real default.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from oviya import assets
from oviya.config import PROJECT_ROOT, load_settings
from oviya.llm.llama_cpp import resolve_gguf


def test_the_default_model_is_qwen_1_5b_assembled_from_its_wheels_and_verified(tmp_path):
    settings = load_settings("cpu")
    assert settings.llm.llama_cpp.model == "qwen2.5-1.5b"
    path = resolve_gguf("qwen2.5-1.5b", tmp_path)  # assembled afresh here, sha256 checked before the rename
    assert path.stat().st_size == 1_117_320_768 and assets.sha256_file(path) == assets.QWEN25_15B_GGUF.sha256
    path.write_bytes(b"GGUF truncated")  # a damaged copy in the cache is refused, never loaded
    with pytest.raises(assets.AssetError, match="sha256"):
        resolve_gguf("qwen2.5-1.5b", tmp_path)


@pytest.mark.timeout(900)
def test_dialogue_eval_on_the_default_brain_checks_and_prints_every_reply(tmp_path):
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "eval", "dialogue", "--quick", "--profile", "cpu", "--out", str(out)],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=800, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    section = json.loads((out / "summary.json").read_text())["dialogue"]
    assert "qwen2.5-coder-1.5b" in section["llm"] and section["dialogues"] == 3
    assert section["check_rate"] is not None and set(section["check_rate_by_check"]) >= {"max_sentences"}
    assert section["ttft_ms_p50"] is not None
    rows = [json.loads(line) for line in (out / "dialogue.jsonl").read_text().splitlines()]
    report = (out / "report.md").read_text()
    assert all(r["reply"] and r["reply"] in report for r in rows)  # every reply printed for a human read
    assert any(r["route"] == "identity" for r in rows)  # "am I talking to a robot?" got the persona's fixed answer
