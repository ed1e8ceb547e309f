"""The OpenAI-compatible HTTP API of Oviya's models (a FastAPI app), the same whether the stages run in this process
or as Ray Serve deployments (:mod:`oviya.serve.ray_app`).

Routes (the whole allow-list; anything else is 404):

- ``GET /v1/models``: the three models served.
- ``POST /v1/audio/transcriptions``: multipart ``file`` (WAV, FLAC or OGG; any rate, mixed to mono and resampled to
  16 kHz; at most ``oviya.stt.MAX_AUDIO_S``), ``model``, optional ``language`` and ``response_format``
  (``json`` | ``text``) → ``{"text": ...}``.
- ``POST /v1/audio/speech``: JSON ``{"model", "input", "voice", "response_format": "pcm", "instructions"}`` →
  streamed ``pcm``: int16 little-endian mono at ``serve.speech_sample_rate`` (24 kHz, as OpenAI's). ``instructions``
  may name a reply emotion of ``config/emotion_map.yaml`` (the voice style), anything else speaks neutral.
- ``POST /v1/chat/completions``: OpenAI chat JSON; ``stream: true`` gives server-sent events ending in
  ``data: [DONE]``.

Input is bounded before it is read: a POST needs a ``Content-Length`` of at most ``serve.max_request_bytes``
(411/413 otherwise), chat requests are capped in messages, characters and ``max_tokens``, clauses at
``oviya.tts.MAX_CLAUSE_CHARS``. When the environment variable named by ``serve.api_key_env`` is set, every route
needs it as ``Authorization: Bearer``. Errors use OpenAI's body ``{"error": {"message", "type", "code"}}``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Literal, Protocol

import numpy as np
import soundfile as sf
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from oviya.audio import AudioFormatError, resample
from oviya.config import ServeSettings
from oviya.llm import GenerationParams, LLMError, Message
from oviya.stt import MAX_AUDIO_S, SAMPLE_RATE, STTError, Transcript
from oviya.tts import MAX_CLAUSE_CHARS, TTSError

log = logging.getLogger(__name__)
ROUTES = {("GET", "/v1/models"), ("POST", "/v1/audio/transcriptions"), ("POST", "/v1/audio/speech"),
          ("POST", "/v1/chat/completions")}


class Stages(Protocol):
    """What the API serves; :class:`oviya.serve.local.LocalStages` (in-process) or Ray Serve handles.

    Attributes:
        names: ``{"stt": ..., "tts": ..., "llm": ...}`` model ids for ``/v1/models``.
    """

    names: dict[str, str]

    async def transcribe(self, audio: np.ndarray) -> Transcript:
        """``np.ndarray[float32]`` shape (n,), 16 kHz mono. Raises STTError, AudioFormatError."""
        ...

    def speech(self, text: str, instructions: str | None) -> AsyncIterator[bytes]:
        """int16 little-endian mono pcm at ``serve.speech_sample_rate``. Raises TTSError."""
        ...

    def chat(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[str]:
        """Text deltas. Raises LLMError."""
        ...


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _error(status: int, message: str, code: str) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(max_length=200)
    input: str = Field(min_length=1, max_length=MAX_CLAUSE_CHARS)
    voice: str = Field(default="default", max_length=100)
    response_format: Literal["pcm"] = "pcm"
    instructions: str | None = Field(default=None, max_length=200)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(max_length=200)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    temperature: float = Field(default=0.6, ge=0, le=2)
    top_p: float = Field(default=0.9, gt=0, le=1)


def read_audio(data: bytes) -> np.ndarray:
    """An uploaded audio file → ``np.ndarray[float32]`` shape (n,), 16 kHz mono.

    Raises:
        AudioFormatError: not a file soundfile reads (WAV, FLAC, OGG), empty, or longer than ``MAX_AUDIO_S``.
    """
    try:
        info = sf.info(io.BytesIO(data))
        if info.frames > MAX_AUDIO_S * info.samplerate:
            raise AudioFormatError(f"audio too long: {info.frames / info.samplerate:.1f} s > {MAX_AUDIO_S} s")
        pcm, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioFormatError(f"unreadable audio file: {e}") from e
    if pcm.shape[0] == 0:
        raise AudioFormatError("empty audio file")
    mono = pcm.mean(axis=1)  # soundfile gives (frames, channels)
    if not np.all(np.isfinite(mono)):
        raise AudioFormatError("audio contains NaN or infinite samples")
    return np.clip(resample(mono, rate, SAMPLE_RATE), -1.0, 1.0).astype(np.float32)


_END = object()


async def _opened(stream: AsyncIterator, error: type[Exception], code: str) -> AsyncIterator:
    """``stream`` once its first item is out. A failure before it is an HTTP 503 (``code``); one after it ends the
    stream, logged: the status line has been sent by then."""
    it = stream.__aiter__()
    try:
        first = await anext(it, _END)
    except error as e:
        raise ApiError(503, str(e), code) from e

    async def rest() -> AsyncIterator:
        if first is not _END:
            yield first
        try:
            async for item in it:
                yield item
        except error as e:
            log.warning("%s stream cut: %s", code.split("_")[0].upper(), e)

    return rest()


def build_api(stages: Stages, settings: ServeSettings) -> FastAPI:
    """The FastAPI app serving ``stages`` (routes: module docstring)."""
    app = FastAPI(title="Oviya models (OpenAI-compatible)", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        key = os.environ.get(settings.api_key_env)
        if key and not secrets.compare_digest(request.headers.get("authorization", ""), f"Bearer {key}"):
            return _error(401, "missing or wrong bearer token", "unauthorized")
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                return _error(411, "a Content-Length header is required", "length_required")
            if int(length) > settings.max_request_bytes:
                return _error(413, f"request body over {settings.max_request_bytes} bytes", "too_large")
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.message, e.code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"invalid request: {where}: {first.get('msg', 'bad value')}", "invalid_request")

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "oviya", "stage": stage}
                                           for stage, name in stages.names.items()]}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(file: Annotated[UploadFile, File()], model: Annotated[str, Form(max_length=200)],
                             language: Annotated[str | None, Form(max_length=16)] = None,
                             response_format: Annotated[Literal["json", "text"], Form()] = "json"):
        try:
            audio = read_audio(await file.read())
            result = await stages.transcribe(audio)
        except AudioFormatError as e:
            raise ApiError(400, str(e), "bad_audio") from e
        except STTError as e:
            raise ApiError(503, str(e), "stt_unavailable") from e
        if response_format == "text":
            return PlainTextResponse(result.text)
        return {"text": result.text}

    @app.post("/v1/audio/speech")
    async def speech(req: SpeechRequest) -> StreamingResponse:
        body = await _opened(stages.speech(req.input, req.instructions), TTSError, "tts_unavailable")
        return StreamingResponse(body, media_type="audio/pcm",
                                 headers={"X-Sample-Rate": str(settings.speech_sample_rate)})

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        if len(req.messages) > settings.max_chat_messages:
            raise ApiError(400, f"more than {settings.max_chat_messages} messages", "too_many_messages")
        if sum(len(m.content) for m in req.messages) > settings.max_chat_chars:
            raise ApiError(400, f"messages over {settings.max_chat_chars} characters", "too_long")
        max_tokens = min(req.max_completion_tokens or req.max_tokens or settings.max_tokens, settings.max_tokens)
        params = GenerationParams(max_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p)
        messages: list[Message] = [{"role": m.role, "content": m.content} for m in req.messages]
        deltas = await _opened(stages.chat(messages, params), LLMError, "llm_unavailable")
        cid, created, name = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), stages.names["llm"]

        def chunk(delta: dict, finish: str | None) -> str:
            return "data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created,
                                          "model": name, "choices": [{"index": 0, "delta": delta,
                                                                      "finish_reason": finish}]}) + "\n\n"

        if req.stream:
            async def events() -> AsyncIterator[str]:
                yield chunk({"role": "assistant", "content": ""}, None)
                async for delta in deltas:
                    yield chunk({"content": delta}, None)
                yield chunk({}, "stop")
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        text = "".join([d async for d in deltas])
        return {"id": cid, "object": "chat.completion", "created": created, "model": name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}

    return app
