"""Oviya's OpenAI-compatible API (oviya/serve/api.py) served from this process on loopback, and the ``openai_compat``
STT/TTS chain members (plus the existing ``openai`` LLM backend) talking to it with the official ``openai`` client:
real models behind (Whisper tiny.en, Piper, SmolLM2), real speech in. A service that is down hands the work to the
local model of the chain."""

from __future__ import annotations

import asyncio
import io

import httpx
import numpy as np
import pytest
import soundfile as sf
from protocol_servers import LoopbackServer
from test_stt import wer

from oviya.audio import resample
from oviya.components import Components
from oviya.config import Settings
from oviya.llm import GenerationParams, LLMError
from oviya.llm.openai_compat import OpenAICompatChat
from oviya.serve.api import ROUTES, build_api
from oviya.serve.local import LLMStage, LocalStages, STTStage, TTSStage, local_settings, stage_names
from oviya.stt import STTError
from oviya.stt.fallback import FallbackSTT
from oviya.stt.openai_compat import OpenAICompatTranscriber, wav_bytes
from oviya.tts import TTSError
from oviya.tts.fallback import FallbackTTS
from oviya.tts.openai_compat import OpenAICompatTTS

DOWN_URL = "http://127.0.0.1:9/v1"  # the discard port: nothing listens, the connection is refused


@pytest.fixture(scope="module")
def service(settings: Settings, components: Components):
    """The API over the suite's loaded models, on a free loopback port."""
    stages = LocalStages(stage_names(settings), STTStage(components.stt),
                         TTSStage(components.tts, settings.serve.speech_sample_rate), LLMStage(components.llm))
    with LoopbackServer(build_api(stages, settings.serve)) as server:
        yield server


def stt_member(settings: Settings, url: str) -> OpenAICompatTranscriber:
    return OpenAICompatTranscriber(settings.stt.openai.model_copy(update={"base_url": url, "timeout_s": 5.0}), "en")


def tts_member(settings: Settings, url: str) -> OpenAICompatTTS:
    return OpenAICompatTTS(settings.tts.openai.model_copy(update={"base_url": url}))


async def collect(tts, text: str, emotion: str | None = None) -> list[np.ndarray]:
    return [c async for c in tts.synthesize(text, emotion)]


def test_remote_stt_transcribes_real_speech_through_the_api(service, settings, clip):
    audio, row = clip("stt/whisper.cpp/jfk.wav")
    result = stt_member(settings, service.url + "/v1").transcribe(audio)
    assert wer(row["transcript"], result.text) <= 0.15, result.text
    assert result.audio_s == pytest.approx(11.0, abs=0.01)


def test_remote_tts_streams_24khz_pcm_in_the_emotions_voice_style(service, settings, components):
    tts = tts_member(settings, service.url + "/v1")
    assert tts.sample_rate == 24000
    text = "I am so sorry to hear that. Take all the time you need."

    # Each asyncio.run is a new event loop (as eval runs each clip): the client follows (oviya.aio.PerLoop).
    def seconds(tts, emotion: str | None, takes: int = 3) -> float:
        return float(np.mean([sum(map(len, asyncio.run(collect(tts, text, emotion)))) / tts.sample_rate
                              for _ in range(takes)]))

    chunks = asyncio.run(collect(tts, text, "sad"))
    audio = np.concatenate(chunks)
    assert audio.dtype == np.int16 and len(chunks) >= 1
    # The style travelled: sad is spoken slower than neutral, about as long as the same clause spoken locally.
    # Piper's duration noise moves one take's length by ~4 % (sd, measured over 30 takes), so each side is a mean
    # of three takes: a single pair differed by 11 % once.
    sad = seconds(tts, "sad")
    assert sad == pytest.approx(seconds(components.tts, "sad"), rel=0.1)
    assert sad > 1.1 * seconds(tts, None)
    assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 300  # speech, not silence


def test_remote_llm_streams_a_reply_through_the_api(service, settings):
    chat = OpenAICompatChat(settings.llm.openai.model_copy(update={"base_url": service.url + "/v1",
                                                                   "model": stage_names(settings)["llm"]}))

    async def reply() -> list[str]:
        return [d async for d in chat.stream([{"role": "user", "content": "Say hello in five words."}],
                                             GenerationParams(max_tokens=16, temperature=0.0, top_p=1.0))]

    deltas = asyncio.run(reply())
    assert len(deltas) >= 2 and "".join(deltas).strip()
    assert "".join(asyncio.run(reply())).strip()  # a second event loop: the client follows it (oviya.aio.PerLoop)
    chat.warmup([{"role": "system", "content": "You are kind."}])  # one token: the server now holds the prefix
    down = OpenAICompatChat(settings.llm.openai.model_copy(update={"base_url": DOWN_URL}))
    down.warmup([{"role": "system", "content": "You are kind."}])  # a server that is down is not an error at start-up


def test_only_the_allow_listed_routes_exist_and_input_is_bounded_before_it_is_read(service, settings, monkeypatch,
                                                                                   clip):
    app_routes = {(m, r.path) for r in build_api(LocalStages({}, None, None, None), settings.serve).routes
                  for m in getattr(r, "methods", ())}
    assert app_routes == ROUTES
    with httpx.Client(base_url=service.url, timeout=30) as c:
        for path in ("/docs", "/openapi.json", "/redoc", "/v1/audio/translations", "/metrics"):
            assert c.get(path).status_code == 404, path
        assert c.get("/v1/models").json()["data"][0]["id"] == "tiny.en"
        # no Content-Length (chunked upload): refused before the body is read
        r = c.post("/v1/chat/completions", content=iter([b"{}"]), headers={"content-type": "application/json"})
        assert r.status_code == 411 and r.json()["error"]["code"] == "length_required"
        big = b"0" * (settings.serve.max_request_bytes + 1)
        r = c.post("/v1/audio/transcriptions", files={"file": ("a.wav", big)}, data={"model": "x"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        r = c.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"RIFF not audio")}, data={"model": "x"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_audio"
        long = np.zeros(int(121 * 16000), np.float32)  # over oviya.stt.MAX_AUDIO_S
        r = c.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav_bytes(long))}, data={"model": "x"})
        assert r.status_code == 400 and "too long" in r.json()["error"]["message"]
        audio, row = clip("stt/whisper.cpp/jfk.wav")
        stereo = io.BytesIO()  # real speech as a 48 kHz stereo FLAC: read, mixed to mono, resampled
        sf.write(stereo, np.stack([resample(audio, 16000, 48000)] * 2, axis=1), 48000, format="FLAC")
        r = c.post("/v1/audio/transcriptions", files={"file": ("a.flac", stereo.getvalue())},
                   data={"model": "x", "response_format": "text"})
        assert r.status_code == 200 and wer(row["transcript"], r.text) <= 0.15, r.text
        for body in ({"model": "x", "input": "", "voice": "v"}, {"model": "x", "input": "a" * 1001, "voice": "v"},
                     {"model": "x", "input": "hi", "voice": "v", "response_format": "mp3"}):
            r = c.post("/v1/audio/speech", json=body)
            assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", body
        many = [{"role": "user", "content": "hi"}] * (settings.serve.max_chat_messages + 1)
        assert c.post("/v1/chat/completions", json={"model": "x", "messages": many}).status_code == 400
        huge = [{"role": "user", "content": "a" * (settings.serve.max_chat_chars + 1)}]
        assert c.post("/v1/chat/completions", json={"model": "x", "messages": huge}).status_code == 400
        # with a key configured, a request without it is refused
        monkeypatch.setenv(settings.serve.api_key_env, "s3cret-key-for-the-test")
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/models", headers={"authorization": "Bearer s3cret-key-for-the-test"}).status_code == 200


def test_stt_chain_falls_back_to_local_whisper_when_the_service_is_down(settings, components, clip):
    audio, row = clip("stt/whisper.cpp/jfk.wav")
    now = [0.0]
    chain = FallbackSTT([stt_member(settings, DOWN_URL), components.stt], retry_after_s=30.0, clock=lambda: now[0])
    result = chain.transcribe(audio)
    assert wer(row["transcript"], result.text) <= 0.15 and result.backend == components.stt.name
    down = chain.members[0]
    calls = []
    chain.members[0] = type("Spy", (), {"name": down.name, "transcribe": lambda self, a: calls.append(1)})()
    chain.transcribe(audio[:16000])
    assert calls == []  # skipped for retry_after_s: a dead service does not cost every turn its timeout
    with pytest.raises(STTError, match="every STT backend failed"):
        FallbackSTT([stt_member(settings, DOWN_URL)], 30.0).transcribe(audio[:16000])


def test_tts_chain_falls_back_to_local_piper_when_the_service_is_down(settings, components):
    with pytest.raises(TTSError):
        asyncio.run(collect(tts_member(settings, DOWN_URL), "Hello there."))
    down = tts_member(settings, DOWN_URL)
    chain = FallbackTTS([down, *components.tts.synths], settings.tts.first_audio_timeout_s, components.tts.styles)
    turn = chain.turn()

    async def speak() -> np.ndarray:
        return np.concatenate([c async for c in turn.synthesize("Hello there, nice to meet you.", "joyful")])

    audio = asyncio.run(speak())
    assert chain.sample_rate == 24000 and turn.last_used == components.tts.synths[0].name
    assert len(audio) / 24000 > 0.8


def test_a_served_process_drops_remote_members_so_it_never_calls_itself(settings):
    remote = settings.model_copy(update={"stt": settings.stt.model_copy(update={"chain": ["openai_compat",
                                                                                         "faster_whisper"]})})
    assert local_settings(remote).stt.chain == ["faster_whisper"]
    only_remote = settings.model_copy(update={"llm": settings.llm.model_copy(update={"chain": ["openai"]})})
    with pytest.raises(ValueError, match="no local backend"):
        local_settings(only_remote)


class StagesThatFail:
    """Stages whose backends are all down (each raises its stage's error), to check the API's 503s."""

    def __init__(self) -> None:
        self.names = {"stt": "s", "tts": "t", "llm": "l"}

    async def transcribe(self, audio):
        raise STTError("every STT backend failed")

    async def speech(self, text, instructions):
        raise TTSError("every TTS backend failed")
        yield b""

    async def chat(self, messages, params):
        raise LLMError("every LLM backend failed")
        yield ""


def test_a_stage_that_fails_answers_503_in_openais_error_shape_and_chat_also_answers_unstreamed(service, settings,
                                                                                                  clip):
    with LoopbackServer(build_api(StagesThatFail(), settings.serve)) as down, httpx.Client(timeout=30) as c:
        audio, _ = clip("stt/speechbrain/example1.wav")
        for path, kwargs in (("/v1/audio/transcriptions", {"files": {"file": ("a.wav", wav_bytes(audio))},
                                                           "data": {"model": "s"}}),
                             ("/v1/audio/speech", {"json": {"model": "t", "input": "Hello.", "voice": "v"}}),
                             ("/v1/chat/completions", {"json": {"model": "l", "messages": [
                                 {"role": "user", "content": "hi"}]}})):
            r = c.post(down.url + path, **kwargs)
            assert r.status_code == 503 and r.json()["error"]["type"] == "server_error", (path, r.text)
        r = c.post(service.url + "/v1/chat/completions", json={
            "model": "x", "max_tokens": 8, "messages": [{"role": "user", "content": "Say hi."}]})
        body = r.json()
        assert r.status_code == 200 and body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"].strip()
