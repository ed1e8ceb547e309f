"""Local stand-ins for LLM servers that cannot run here, speaking their real wire protocols on loopback.

- Ollama ``POST /api/chat`` (streamed NDJSON, https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion)
- OpenAI ``POST /v1/chat/completions`` (streamed server-sent events of ``chat.completion.chunk`` objects)

Both are backed by a real embedded model (llama.cpp), so the client code under test (the official ``ollama`` and
``openai`` packages) parses real model output. ``hang=True`` accepts requests and never answers (a stalled
backend). Ollama itself and vLLM cannot run on this machine: tests using these are protocol tests.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from oviya.llm import ChatModel, GenerationParams


def _params(options: dict, max_tokens: int | None) -> GenerationParams:
    return GenerationParams(max_tokens=int(max_tokens or options.get("num_predict") or 64),
                            temperature=float(options.get("temperature", 0.6)), top_p=float(options.get("top_p", 0.9)))


def build_app(model: ChatModel, hang: bool = False) -> Starlette:
    async def ollama_chat(request: Request) -> StreamingResponse:
        body = await request.json()
        if hang:
            await asyncio.sleep(3600)

        async def lines() -> AsyncIterator[bytes]:
            async for delta in model.stream(body["messages"], _params(body.get("options") or {}, None)):
                yield (json.dumps({"model": body["model"], "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                   "message": {"role": "assistant", "content": delta}, "done": False}) + "\n").encode()
            yield (json.dumps({"model": body["model"], "message": {"role": "assistant", "content": ""},
                               "done": True, "done_reason": "stop"}) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def openai_chat(request: Request) -> StreamingResponse:
        body = await request.json()
        if hang:
            await asyncio.sleep(3600)

        def chunk(delta: dict, finish: str | None) -> bytes:
            obj = {"id": "chatcmpl-local", "object": "chat.completion.chunk", "created": int(time.time()),
                   "model": body["model"], "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(obj)}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            yield chunk({"role": "assistant", "content": ""}, None)
            async for delta in model.stream(body["messages"], _params(body, body.get("max_tokens"))):
                yield chunk({"content": delta}, None)
            yield chunk({}, "stop")
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/api/chat", ollama_chat, methods=["POST"]),
                             Route("/v1/chat/completions", openai_chat, methods=["POST"])])


class LoopbackServer:
    """Serve an ASGI ``app`` on 127.0.0.1 at a free port in a background thread. Use as a context manager."""

    def __init__(self, app: Starlette) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("local protocol server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._server.force_exit = True  # a hanging request would otherwise hold shutdown
        self._thread.join(5)


class LocalServer(LoopbackServer):
    """:func:`build_app` (Ollama + OpenAI protocols over ``model``) as a :class:`LoopbackServer`."""

    def __init__(self, model: ChatModel, hang: bool = False) -> None:
        super().__init__(build_app(model, hang))
