"""The FastAPI server: Gradio page at ``/``, FastRTC ``POST /webrtc/offer`` and ``WS /websocket/offer`` for API
clients, ``POST /api/text`` for typed turns into a live call, ``GET /api/personas`` and ``POST /api/persona`` to switch
a live call's persona, ``POST /api/memory`` to remember a caller across sessions, ``GET /health``, ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

import gradio as gr
from fastapi import FastAPI, HTTPException, Response, WebSocket
from prometheus_client import CONTENT_TYPE_LATEST
from fastrtc import Stream
from pydantic import BaseModel, Field

from oviya.brain.persona import list_personas
from oviya.components import Components, load_components
from oviya.config import Settings, load_settings
from oviya.metrics import Metrics
from oviya.server.handler import OviyaHandler, SessionRegistry
from oviya.server.ice import restrict_ice_hosts, rtc_configuration
from oviya.server.ui import build_ui
from oviya.server.websocket import ValidatingWebSocket

log = logging.getLogger(__name__)


class TextTurn(BaseModel):
    """Body of ``POST /api/text``: a typed turn for the live call ``session_id`` (its webrtc_id / websocket_id)."""

    session_id: str = Field(min_length=1, max_length=128)
    text: str = Field(min_length=1)


class PersonaSwitch(BaseModel):
    """Body of ``POST /api/persona``: switch the live call ``session_id`` to ``config/personas/<persona>.yaml``."""

    session_id: str = Field(min_length=1, max_length=128)
    persona: str = Field(min_length=1, max_length=64)


class MemoryKey(BaseModel):
    """Body of ``POST /api/memory``: remember the caller of ``session_id`` across sessions under ``memory_key``."""

    session_id: str = Field(min_length=1, max_length=128)
    memory_key: str = Field(min_length=1, max_length=200)


def build_app(settings: Settings, components: Components) -> FastAPI:
    """Wire the handler, the FastRTC stream, the HTTP API and the Gradio UI into one FastAPI app."""
    hosts = settings.server.ice_hosts
    if hosts:
        restrict_ice_hosts(hosts)
    rtc = rtc_configuration(hosts)
    sessions = SessionRegistry()
    metrics = Metrics()
    handler = OviyaHandler(components, settings, sessions, metrics)
    stream = Stream(
        handler, modality="audio", mode="send-receive", rtc_configuration=rtc, server_rtc_configuration=rtc,
        concurrency_limit=settings.server.concurrency_limit, time_limit=settings.server.time_limit_s, verbose=False,
    )
    app = FastAPI(title="Oviya")
    # mu-law is one byte per sample: cap one websocket media message at audio.max_input_frame_s of 16 kHz audio.
    max_media_bytes = int(settings.audio.max_input_frame_s * settings.audio.vad_sample_rate)

    @app.websocket("/websocket/offer")  # registered before stream.mount, so it shadows FastRTC's unvalidated route
    async def websocket_offer(websocket: WebSocket) -> None:
        await stream.websocket_offer(ValidatingWebSocket(websocket, max_media_bytes))

    stream.mount(app)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "profile": settings.profile, "sessions": len(sessions),
                "llm": components.llm.name, "persona": components.persona.name}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.export(), media_type=CONTENT_TYPE_LATEST)

    def on_live_session(session_id: str, action: Callable[[OviyaHandler], None]) -> None:
        """Apply ``action`` to a live call: 404 when there is none, 422 when the action rejects its input."""
        live = sessions.get(session_id)
        if live is None:
            raise HTTPException(404, f"no live session {session_id!r}")
        try:
            action(live)
        except (ValueError, FileNotFoundError) as e:
            raise HTTPException(422, str(e)) from e

    @app.post("/api/text")
    async def text_turn(turn: TextTurn) -> dict:
        on_live_session(turn.session_id, lambda live: live.push_text(turn.text))
        return {"status": "accepted"}

    @app.get("/api/personas")
    async def personas() -> dict:
        return {"personas": list_personas(), "default": settings.brain.persona}

    @app.post("/api/persona")
    async def switch_persona(body: PersonaSwitch) -> dict:
        on_live_session(body.session_id, lambda live: live.set_persona(body.persona))
        return {"status": "ok", "persona": body.persona}

    @app.post("/api/memory")
    async def memory_key(body: MemoryKey) -> dict:
        on_live_session(body.session_id, lambda live: live.set_memory_key(body.memory_key))
        return {"status": "ok"}

    ui = build_ui(handler, sessions, components, settings, rtc)
    return gr.mount_gradio_app(app, ui, path="/")


def main(argv: list[str] | None = None) -> None:
    """``python app.py [--host H] [--port P] [--profile NAME]``: load the models and serve."""
    import uvicorn

    settings = load_settings()
    parser = argparse.ArgumentParser(description="Oviya realtime voice companion")
    parser.add_argument("--host", default=settings.server.host)
    parser.add_argument("--port", type=int, default=settings.server.port)
    parser.add_argument("--profile", default=None, help="config/profiles/<name>.yaml (default: OVIYA_PROFILE or cpu)")
    args = parser.parse_args(argv)
    if args.profile:
        settings = load_settings(args.profile)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("faster_whisper", "aioice", "aiortc", "httpx"):  # per-call INFO lines drown the session log
        logging.getLogger(chatty).setLevel(logging.WARNING)
    app = build_app(settings, load_components(settings))
    log.info("serving on http://%s:%d", args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
