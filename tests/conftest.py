"""Shared fixtures: settings, the eval manifest (``eval.data_dir``), and the real models loaded once per run."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from eval.server import local_app
from oviya.audio import read_wav
from oviya.components import Components, load_components
from oviya.config import CONFIG_DIR, Settings, load_settings
from oviya.server.ice import restrict_ice_hosts
from oviya.tts.styles import EmotionMap

# The suite runs on the cpu-tiny profile (SmolLM2-135M: ~5x faster than the default Qwen2.5-Coder-1.5B) wherever the
# reply's quality is not the point; servers and eval runs it starts inherit it. tests/test_default_brain.py loads the
# default cpu profile's model on purpose.
os.environ.setdefault("OVIYA_PROFILE", "cpu-tiny")

SPOKEN_REPLY = "Oh, that sounds wonderful! Tell me more about your trip to the mountains, I would love to hear it."


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def manifest(settings: Settings) -> list[dict]:
    path = settings.eval.data_dir / "manifest.jsonl"
    if not path.is_file():
        pytest.fail(f"eval audio manifest not found at {path}: set OVIYA_EVAL__DATA_DIR")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def clip(settings: Settings, manifest: list[dict]):
    """``clip(file)`` → (16 kHz float32 audio, manifest row)."""

    rows = {r["file"]: r for r in manifest}

    def load(file: str) -> tuple[np.ndarray, dict]:
        audio, _ = read_wav(Path(settings.eval.data_dir) / file, 16000)
        return audio, rows[file]

    return load


@pytest.fixture(scope="session")
def components(settings: Settings) -> Components:
    """The real embedded models of the cpu-tiny profile (Silero, Whisper tiny.en, SmolLM2, Piper)."""
    return load_components(settings)


@pytest.fixture(scope="session")
def styles(settings: Settings) -> EmotionMap:
    """The emotion map (config/emotion_map.yaml): voice styles and avatar expressions."""
    return EmotionMap(CONFIG_DIR / settings.tts.emotion_map)


@pytest.fixture(scope="session")
def reply_audio(components: Components) -> tuple[np.ndarray, int]:
    """:data:`SPOKEN_REPLY` spoken by the real TTS chain (Piper), joyful: (int16 mono, sample rate in Hz)."""

    async def speak() -> np.ndarray:
        return np.concatenate([c async for c in components.tts.synthesize(SPOKEN_REPLY, "joyful")])

    return asyncio.run(speak()), components.tts.sample_rate


@pytest.fixture(scope="session")
def recordings_dir(tmp_path_factory) -> Path:
    """Where :func:`app_server` keeps the calls its users record as eval datasets."""
    return tmp_path_factory.mktemp("recordings")


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, recordings_dir) -> str:
    """``python app.py --host 127.0.0.1 --port N`` with WebRTC restricted to loopback; yields its base URL.

    The test process restricts its own aiortc client to loopback the same way (docs/architecture.md).
    """
    restrict_ice_hosts(["127.0.0.1"])
    tmp = tmp_path_factory.mktemp("server")
    with local_app(tmp / "app.log", env={"OVIYA_MEMORY__DIR": str(tmp / "memory"),
                                         "OVIYA_SERVER__TRANSCRIPTS_DIR": str(tmp / "transcripts"),
                                         "OVIYA_RECORDING__DIR": str(recordings_dir)}) as url:
        yield url


TOKEN = "test-token-0123456789"
HARDENED_ENV = {  # a public-demo-like server: a token, tight limits, fault injection, short timeouts
    "OVIYA_AUTH_TOKEN": TOKEN,
    "OVIYA_SERVER__TRUST_FORWARDED_FOR": "true",  # tests pose as different clients with X-Forwarded-For
    "OVIYA_SERVER__FAULTS_API": "true",
    "OVIYA_LIMITS__MAX_SESSIONS": "3",
    "OVIYA_LIMITS__MAX_CONNECTIONS_PER_CLIENT": "1",
    "OVIYA_LIMITS__MAX_TURNS_PER_MINUTE": "3",
    "OVIYA_LIMITS__MAX_SESSION_S": "40",
    "OVIYA_TURN__MAX_UTTERANCE_S": "3",
    "OVIYA_LLM__STALL_TIMEOUT_S": "2",
}


@dataclass
class HardenedServer:
    url: str
    transcripts: Path  # server.transcripts_dir
    log: Path  # its JSON log (server.log_format: json)


@pytest.fixture(scope="session")
def hardened_server(tmp_path_factory) -> HardenedServer:
    """``app.py`` with :data:`HARDENED_ENV` and JSON logs."""
    restrict_ice_hosts(["127.0.0.1"])
    tmp = tmp_path_factory.mktemp("hardened")
    env = {**HARDENED_ENV, "OVIYA_MEMORY__DIR": str(tmp / "memory"), "OVIYA_SERVER__LOG_FORMAT": "json",
           "OVIYA_SERVER__TRANSCRIPTS_DIR": str(tmp / "transcripts")}
    with local_app(tmp / "app.log", env=env) as url:
        yield HardenedServer(url, tmp / "transcripts", tmp / "app.log")
