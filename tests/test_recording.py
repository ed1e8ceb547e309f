"""A call recorded as an eval dataset (oviya/recording.py): the manifest format the eval harness reads, the caps."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from eval.data import load_manifest
from oviya.audio import read_wav
from oviya.config import load_settings
from oviya.events import TurnDone, TurnRecord
from oviya.recording import CallRecording


def turn(turn_id: int, seconds: float, outcome: str = "answered") -> TurnDone:
    t = np.arange(int(16000 * seconds)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    rec = TurnRecord(turn_id, "voice", user_text=f"turn {turn_id} words", outcome=outcome, speech_end=1.0, eot=1.3)
    return TurnDone(rec, audio, ((0.1, seconds - 0.1),))


def recording_settings(tmp_path, **changes):
    return load_settings(recording={"dir": str(tmp_path / "rec"), **changes}).recording


def test_each_finished_turn_becomes_a_manifest_row_with_its_wav_that_the_eval_harness_reads(tmp_path):
    stops: list[str] = []
    rec = CallRecording(recording_settings(tmp_path), stops.append)
    for ev in (turn(1, 1.5), turn(2, 0.8, "continued"), turn(2, 2.0), TurnDone(TurnRecord(3, "text"))):
        rec.on_turn_done(ev)
    rows = [json.loads(line) for line in (rec.dir / "manifest.jsonl").read_text().splitlines()]
    assert [r["file"] for r in rows] == ["turn_0001.wav", "turn_0002.wav"]  # the merged turn once; no text turn
    assert rows[1]["speech_regions"] == [{"start": 0.1, "end": 1.9}] and rows[1]["duration_s"] == 2.0
    assert rows[1]["transcript"] == "turn 2 words" and rows[1]["turn_record"]["outcome"] == "answered"
    audio, rate = read_wav(rec.dir / "turn_0002.wav")
    assert rate == 16000 and len(audio) == 32000 and np.abs(audio).max() == pytest.approx(0.3, abs=0.01)
    clips = load_manifest(rec.dir)  # the eval harness's own reader
    assert [c.category for c in clips] == ["stt", "stt"] and clips[1].speech_regions == [(0.1, 1.9)]
    with zipfile.ZipFile(rec.zip()) as z:
        assert sorted(z.namelist()) == ["manifest.jsonl", "turn_0001.wav", "turn_0002.wav"]
    assert stops == [] and rec.dir.parent == tmp_path / "rec" and len(rec.dir.name) == 16  # a random name


def test_the_caps_stop_the_recording_not_the_call_and_a_forbidding_server_refuses(tmp_path):
    stops: list[str] = []
    rec = CallRecording(recording_settings(tmp_path, max_call_mb=0.1), stops.append)  # ~3 s of 16 kHz int16
    for k in range(1, 5):
        rec.on_turn_done(turn(k, 1.2))
    assert rec.turns == 2 and len(stops) == 1 and "size limit" in stops[0]
    full = CallRecording(recording_settings(tmp_path, max_total_mb=0.05), stops.append)  # the first call's ~77 KB
    full.on_turn_done(turn(1, 0.5))
    assert full.turns == 0 and "full" in stops[-1]
    with pytest.raises(FileNotFoundError, match="nothing recorded"):
        full.zip()
    with pytest.raises(ValueError, match="does not record"):
        CallRecording(recording_settings(tmp_path, enabled=False), stops.append)
