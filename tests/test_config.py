import pytest
from pydantic import ValidationError

from oviya.brain.persona import load_persona
from oviya.config import load_settings


def test_cpu_profile_is_the_default(monkeypatch):
    monkeypatch.delenv("OVIYA_PROFILE", raising=False)  # conftest picks cpu-tiny for the suite
    s = load_settings()
    assert s.profile == "cpu" and s.stt.model == "tiny.en" and s.llm.chain == ["llama_cpp"]
    assert s.llm.llama_cpp.model == "qwen2.5-1.5b" and load_settings("cpu-tiny").llm.llama_cpp.model == "smollm2-135m"


def test_environment_overrides_yaml(monkeypatch):
    monkeypatch.setenv("OVIYA_TURN__SILENCE_MS", "420")
    monkeypatch.setenv("OVIYA_ICE_HOSTS", "127.0.0.1, 127.0.0.2")
    s = load_settings()
    assert s.turn.silence_ms == 420
    assert s.server.ice_hosts == ["127.0.0.1", "127.0.0.2"]


def test_gpu_profile_overrides_backends():
    s = load_settings("gpu")
    assert s.llm.chain == ["ollama", "llama_cpp"] and s.stt.device == "cuda"


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(FileNotFoundError, match="cpu"):
        load_settings("nope")


def test_bad_values_are_rejected(monkeypatch):
    monkeypatch.setenv("OVIYA_VAD__THRESHOLD", "1.5")
    with pytest.raises(ValidationError):
        load_settings()
    monkeypatch.setenv("OVIYA_VAD__THRESHOLD", "0.3")  # below neg_threshold 0.35
    with pytest.raises(ValidationError, match="neg_threshold"):
        load_settings()
    monkeypatch.setenv("OVIYA_VAD__THRESHOLD", "0.5")
    monkeypatch.setenv("OVIYA_AVATAR__BACKEND", "lipsync")  # without avatar.lipsync.url
    with pytest.raises(ValidationError, match="lipsync.url"):
        load_settings()


def test_persona_file_loads_and_builds_a_system_prompt():
    p = load_persona("oviya")
    assert p.name == "Oviya"
    assert "markdown" in p.system_message()
    with pytest.raises(FileNotFoundError, match="oviya"):
        load_persona("nobody")


def test_a_named_profile_is_the_one_recorded_even_when_oviya_profile_names_another(monkeypatch):
    monkeypatch.setenv("OVIYA_PROFILE", "cpu")
    s = load_settings("remote")
    assert s.profile == "remote" and s.stt.chain == ["openai_compat", "faster_whisper"]
