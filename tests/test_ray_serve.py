"""Oviya's models as a Ray Serve application (``python -m oviya.serve``: a local Ray instance on loopback, dashboard
off, the cpu-tiny profile's real models), used by the app's ``remote`` profile over the OpenAI audio and chat API; a
real WebRTC call goes on through the local fallbacks when the application is stopped mid-call."""

from __future__ import annotations

import asyncio
import threading

import httpx
import numpy as np
import pytest
from test_stt import wer

from eval.data import speech_bounds
from eval.server import local_app, serve_process
from oviya.client import talk
from oviya.config import Settings
from oviya.server.ice import restrict_ice_hosts
from oviya.stt.openai_compat import OpenAICompatTranscriber
from oviya.tts.openai_compat import OpenAICompatTTS


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with serve_process(tmp_path_factory.mktemp("serve") / "serve.log") as service:
        yield service


def test_the_serve_application_answers_the_openai_audio_and_chat_api(service, settings: Settings, clip):
    models = httpx.get(service.url + "/models").json()["data"]
    assert {m["stage"]: m["id"] for m in models} == {"stt": "tiny.en", "tts": "piper:joe-medium", "llm": "smollm2-135m"}
    audio, row = clip("stt/whisper.cpp/jfk.wav")
    # stt.openai.timeout_s bounds a live turn's hand-over (2 s); this checks the answer, on a CI machine under load.
    stt = OpenAICompatTranscriber(settings.stt.openai.model_copy(update={"base_url": service.url, "timeout_s": 30.0}),
                                  "en")
    assert wer(row["transcript"], stt.transcribe(audio).text) <= 0.15
    tts = OpenAICompatTTS(settings.tts.openai.model_copy(update={"base_url": service.url, "timeout_s": 30.0}))

    async def speak() -> list[np.ndarray]:
        return [c async for c in tts.synthesize("Hello there, it is lovely to hear from you.", "joyful")]

    assert len(np.concatenate(asyncio.run(speak()))) / tts.sample_rate > 1.0
    r = httpx.post(service.url + "/chat/completions", timeout=60, json={
        "model": "smollm2-135m", "max_tokens": 12, "stream": True,
        "messages": [{"role": "user", "content": "Say hello."}]})
    events = [line for line in r.text.splitlines() if line.startswith("data: ")]
    assert r.status_code == 200 and events[-1] == "data: [DONE]" and len(events) >= 4


def test_a_webrtc_call_on_the_remote_profile_goes_on_locally_when_the_service_stops(service, clip, tmp_path):
    first, _ = clip("stt/picovoice-cheetah/test_en.wav")
    second, _ = clip("stt/speechbrain/example1.wav")  # "The birch canoe slid on the smooth planks."
    gap = np.zeros(16000 * 20, np.float32)  # time for the first reply to play and the service to stop
    mic = np.concatenate([first, gap, second])
    stopped = threading.Event()

    def on_event(event: dict) -> None:
        if event.get("event") == "turn" and event.get("reply_text") and not stopped.is_set():
            stopped.set()
            service.proc.terminate()  # the Serve application and its Ray instance shut down mid-call

    env = {"OVIYA_PROFILE": "remote", "OVIYA_LLM__LLAMA_CPP__MODEL": "smollm2-135m",
           "OVIYA_STT__OPENAI__BASE_URL": service.url, "OVIYA_TTS__OPENAI__BASE_URL": service.url,
           "OVIYA_LLM__OPENAI__BASE_URL": service.url, "OVIYA_LLM__OPENAI__MODEL": "smollm2-135m",
           # turn 1 is served remotely even on a loaded CI machine; a stopped service still fails at once
           "OVIYA_STT__OPENAI__TIMEOUT_S": "10", "OVIYA_LLM__FIRST_TOKEN_TIMEOUT_S": "5",
           "OVIYA_TTS__FIRST_AUDIO_TIMEOUT_S": "5",
           "OVIYA_MEMORY__DIR": str(tmp_path / "memory"), "OVIYA_SERVER__TRANSCRIPTS_DIR": str(tmp_path / "tr")}
    restrict_ice_hosts(["127.0.0.1"])  # the client's candidates too: the call stays on loopback
    with local_app(tmp_path / "app.log", env=env) as url:
        result = asyncio.run(talk(url, mic, listen_s=40.0, until_answers=2, timeout_s=120.0, on_event=on_event))
    turns = result.answers()
    assert len(turns) == 2, result.events
    via_service, local = turns
    assert via_service["stt_backend"].startswith("openai_compat:"), via_service
    assert via_service["llm_backend"].startswith("openai:") and via_service["tts_backend"].startswith("openai_compat:")
    assert service.proc.wait(60) is not None  # it really stopped before the second turn
    assert local["stt_backend"] == "faster_whisper:tiny.en", local
    assert local["llm_backend"].startswith("llama_cpp") and local["tts_backend"].startswith("piper"), local
    assert {"canoe", "planks"} & set(local["user_text"].lower().strip(".").split()), local["user_text"]
    assert local["outcome"] == "answered"
    end = result.mic_started + (len(first) + len(gap)) / 16000 + speech_bounds(second)[1]
    # her second reply was heard (the tiny test LLM may answer in one word: "Birch." is 0.28 s of voice)
    assert result.voiced_s(end, end + 15.0) >= 0.2
