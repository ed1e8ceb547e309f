"""The FastAPI server: Gradio page at ``/``, ``POST /webrtc/offer`` and ``WS /websocket/offer`` for API clients
(FastRTC's protocols, validated), ``GET /api/session/{id}`` (a live call's state and avatar URL), ``POST /api/text``
for typed turns into a live call, ``GET /api/personas`` and ``POST /api/persona`` to switch a live call's persona,
``POST /api/memory`` to remember the caller across calls, ``GET /avatar/{key}`` (a call's avatar as MJPEG),
``GET /health``, ``GET /metrics`` (Prometheus), and with ``server.faults_api`` ``POST /api/faults`` (fault injection
for tests). Nothing else: every route is on the allow-list in :mod:`oviya.server.routes`, checked at start-up.

With ``OVIYA_AUTH_TOKEN`` set, everything but ``/health`` and ``/avatar/{key}`` (a secret per-call key) needs the
token (:mod:`oviya.server.auth`), checked before a body is read (:mod:`oviya.server.guard`). Call-scoped requests
also need the call's own secret, ``X-Call-Token`` (returned by the offer as ``call_token``, and on the websocket in
the ``session`` event). Errors are JSON ``{"detail": message, "code": code}`` (validation errors: FastAPI's
``{"detail": [...]}``); limits answer 409/429/503.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from typing import Any, Literal

import gradio as gr
from aiortc.sdp import SessionDescription
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Request, Response, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastrtc import Stream
from fastrtc.stream import Body
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, model_validator

from oviya.brain.memory import MemoryTokens
from oviya.brain.persona import list_personas
from oviya.components import Components, load_components
from oviya.config import Settings, load_settings
from oviya.logs import setup_logging
from oviya.metrics import Metrics
from oviya.server.auth import TokenAuth
from oviya.server.guard import RequestGuard, check_routes
from oviya.server.handler import OviyaHandler
from oviya.server.ice import restrict_ice_hosts, rtc_configuration
from oviya.server.jitter import set_audio_prefetch
from oviya.server.limits import SESSION_ID_PATTERN, CallLimits, LimitExceeded
from oviya.server.mjpeg import MEDIA_TYPE, FrameHub, TooManyViewers
from oviya.server.routes import allowed_routes
from oviya.server.state import ServerState, SessionRegistry
from oviya.server.ui import build_ui
from oviya.server.websocket import POLICY_VIOLATION, ValidatingWebSocket, error_message
from oviya.transcripts import TranscriptStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000  # no API body is near this; bigger ones are refused (413) before they are read
MAX_SDP_CHARS = 100_000


SessionId = Field(pattern=SESSION_ID_PATTERN, description="a live call's webrtc_id / websocket_id")


class TextTurn(BaseModel):
    """Body of ``POST /api/text``: a typed turn for the live call ``session_id`` (its webrtc_id / websocket_id)."""

    session_id: str = SessionId
    text: str = Field(min_length=1)


class PersonaSwitch(BaseModel):
    """Body of ``POST /api/persona``: switch the live call ``session_id`` to ``config/personas/<persona>.yaml``."""

    session_id: str = SessionId
    persona: str = Field(min_length=1, max_length=64)


class MemoryRequest(BaseModel):
    """Body of ``POST /api/memory``: remember the caller of ``session_id`` across calls. ``memory_token``: the
    secret this server issued to the caller earlier (omit it to be issued a new one); ``display_name``: what Oviya
    calls them (grants nothing)."""

    session_id: str = SessionId
    memory_token: str | None = Field(None, min_length=1, max_length=128)
    display_name: str | None = Field(None, min_length=1, max_length=64)


class FaultRequest(BaseModel):
    """Body of ``POST /api/faults``: make ``stage`` fail (``mode``) in the next turn of ``session_id``."""

    session_id: str = SessionId
    stage: Literal["stt", "llm", "tts"]
    mode: Literal["raise", "hang"]


class Offer(BaseModel):
    """Body of ``POST /webrtc/offer`` (FastRTC's): an SDP offer, or a trickled ICE candidate of a call."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["offer", "ice-candidate"]
    webrtc_id: str = SessionId
    sdp: str | None = Field(None, max_length=MAX_SDP_CHARS)
    candidate: dict | None = None

    @model_validator(mode="after")
    def _complete(self) -> Offer:
        if self.type == "offer":
            if not self.sdp:
                raise ValueError("an offer needs sdp")
            try:
                description = SessionDescription.parse(self.sdp)
            except Exception as e:  # noqa: BLE001 - the parser raises anything on garbage
                raise ValueError(f"sdp does not parse: {e!r}"[:200]) from None
            if not any(m.kind == "audio" for m in description.media):
                raise ValueError("the offer has no audio track")
        elif not isinstance(self.candidate, dict):
            raise ValueError("an ice-candidate needs candidate")
        return self


def api_error(status: int, code: str, message: str) -> JSONResponse:
    """The error body of every refusal: ``{"detail": message, "code": code}``."""
    return JSONResponse({"detail": message, "code": code}, status_code=status)


LIMIT_STATUS = {"max_sessions": 503, "max_connections_per_client": 429, "rate_limited": 429, "session_exists": 409}


def build_app(settings: Settings, components: Components) -> FastAPI:
    """Wire the handler, the FastRTC stream, the HTTP API and the Gradio UI into one FastAPI app.

    Raises:
        oviya.server.ice.TurnConfigError: ``server.turn: hf`` without ``HF_TOKEN``.
        oviya.server.guard.UnexpectedRoutes: a route not on the allow-list.
    """
    srv, lim = settings.server, settings.limits
    if srv.ice_hosts:
        restrict_ice_hosts(srv.ice_hosts)
    turn_credentials, server_rtc = rtc_configuration(srv)
    auth = TokenAuth(settings.auth_token)
    state = ServerState(SessionRegistry(), Metrics(), CallLimits(lim),
                        TranscriptStore(srv.transcripts_dir, max_files=srv.transcripts_max_files,
                                        max_bytes=srv.transcripts_max_bytes),
                        FrameHub(srv.mjpeg_viewers_per_call), MemoryTokens(settings.memory.dir),
                        faults_api=srv.faults_api)
    sessions, limits = state.sessions, state.limits
    handler = OviyaHandler(components, settings, state)
    stream = Stream(  # its routes are not mounted: ours below validate, count and authorise first
        handler, modality="audio", mode="send-receive", server_rtc_configuration=server_rtc,
        concurrency_limit=lim.max_sessions, verbose=False,  # session length: the handler's own clock (an error first)
    )
    app = FastAPI(title="Oviya", docs_url=None, redoc_url=None, openapi_url=None)
    protected = [Depends(auth.require)]
    # mu-law is one byte per sample: cap one websocket media message at audio.max_input_frame_s of 16 kHz audio.
    max_media_bytes = int(settings.audio.max_input_frame_s * settings.audio.vad_sample_rate)

    def client_address(request: Request | WebSocket) -> str:
        """The peer's address; behind ``forwarded_hops`` trusted proxies, the address the outermost one added to
        X-Forwarded-For (entries left of it are whatever the client sent)."""
        peer = request.client.host if request.client else "unknown"
        if not srv.trust_forwarded_for:
            return peer
        hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if h.strip()]
        return hops[-srv.forwarded_hops] if len(hops) >= srv.forwarded_hops else peer

    def watch(session_id: str, pc: Any) -> None:
        """Release a WebRTC call when its connection fails or closes (FastRTC skips its shutdown on ICE failure)."""

        @pc.on("connectionstatechange")
        async def _changed() -> None:
            if pc.connectionState in ("failed", "closed"):
                await release(session_id)

    async def release(session_id: str) -> None:
        live = sessions.get(session_id)
        if live is not None:
            await state.release(live)
        limits.close(session_id)
        pages.forget(session_id)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, e: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input back, and fails with a 500 when that input is no JSON (Infinity, NaN)
        errors = [{"loc": [str(part) for part in err["loc"]], "msg": err["msg"], "type": err["type"]}
                  for err in e.errors()]
        return JSONResponse({"detail": errors, "code": "invalid_request"}, status_code=422)

    @app.exception_handler(LimitExceeded)
    async def limit_exceeded(request: Request, e: LimitExceeded) -> JSONResponse:
        return api_error(LIMIT_STATUS.get(e.code, 429), e.code, e.message)

    @app.post("/webrtc/offer", dependencies=protected)
    async def webrtc_offer(offer: Offer, request: Request) -> Response:
        token = limits.open(offer.webrtc_id, client_address(request)) if offer.type == "offer" else None
        if token is None and limits.token_of(offer.webrtc_id) is None:
            return api_error(404, "no_call", "no open call with this id")
        try:
            response = await stream.offer(Body(**offer.model_dump()))
        except Exception as e:  # noqa: BLE001 - aiortc refuses an offer it cannot answer: the client's fault
            if token is not None:
                await _drop_call(offer.webrtc_id)
            return api_error(400, "bad_offer", f"the offer was refused: {e}"[:300])
        if isinstance(response, JSONResponse):
            meta = json.loads(response.body).get("meta", {})
            if token is not None:  # only the slot this request opened is given back
                limits.close(offer.webrtc_id)
            code = meta.get("error", "offer_failed")
            status = 503 if code == "concurrency_limit_reached" else 409 if code == "connection_already_exists" else 400
            return api_error(status, code, f"WebRTC signalling failed: {code}")
        if token is None:
            return JSONResponse(response)
        if (pc := stream.pcs.get(offer.webrtc_id)) is not None:
            watch(offer.webrtc_id, pc)
            if srv.jitter_prefetch_frames is not None:
                set_audio_prefetch(pc, srv.jitter_prefetch_frames)
        return JSONResponse({**response, "call_token": token})

    async def _drop_call(webrtc_id: str) -> None:
        limits.close(webrtc_id)
        pc = stream.pcs.get(webrtc_id)
        if pc is not None:
            await pc.close()
        stream.clean_up(webrtc_id)

    @app.websocket("/websocket/offer")
    async def websocket_offer(websocket: WebSocket) -> None:
        if not auth.accepts(websocket.query_params.get("token")):
            await websocket.accept()
            await websocket.send_json(error_message("unauthorized", "missing or wrong ?token= (OVIYA_AUTH_TOKEN)"))
            await websocket.close(POLICY_VIOLATION, "unauthorized")
            return
        client = client_address(websocket)
        ws = ValidatingWebSocket(websocket, max_media_bytes, on_start=lambda sid: limits.open(sid, client),
                                 send_queue=srv.send_queue, send_timeout_s=srv.send_timeout_s)
        try:
            await stream.websocket_offer(ws)
        finally:  # FastRTC never shuts a websocket call's handler down: the one release path does
            if ws.websocket_id is not None:
                await release(ws.websocket_id)
            await ws.aclose()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "profile": settings.profile, "sessions": len(sessions),
                "llm": components.llm.name, "persona": components.persona.name, "auth": auth.enabled}

    @app.get("/metrics", dependencies=protected)
    async def prometheus_metrics() -> Response:
        return Response(state.metrics.export(), media_type=CONTENT_TYPE_LATEST)

    def live_call(session_id: str, call_token: str | None) -> OviyaHandler:
        """The live call ``session_id`` if ``call_token`` is its token; else 404 (the same answer for an unknown id
        and a wrong token: ids are not probed)."""
        live = sessions.get(session_id)
        if live is None or not limits.authorizes(session_id, call_token):
            raise HTTPException(404, "no live call with this id and X-Call-Token")
        return live

    def on_live_session(session_id: str, call_token: str | None, action: Callable[[OviyaHandler], Any]) -> Any:
        """Apply ``action`` to a live call: 404 when there is none (or the token is wrong), 422 when the action
        rejects its input."""
        live = live_call(session_id, call_token)
        try:
            return action(live)
        except (ValueError, FileNotFoundError) as e:
            raise HTTPException(422, str(e)) from e

    CallToken = Header(None, alias="X-Call-Token", max_length=128)

    @app.get("/avatar/{key}")
    async def avatar_stream(key: str = Path(max_length=64)) -> StreamingResponse:
        """A live call's avatar as MJPEG; ``key`` comes in the call's ``avatar`` event (no token: see mjpeg.py)."""
        try:
            body = state.frames.stream(key)
        except KeyError:
            raise HTTPException(404, "no live avatar stream with this key") from None
        except TooManyViewers as e:
            return api_error(429, "too_many_viewers", str(e))
        return StreamingResponse(body, media_type=MEDIA_TYPE, headers={"Cache-Control": "no-store"})

    @app.get("/api/session/{session_id}", dependencies=protected)
    async def session_status(session_id: str = Path(pattern=SESSION_ID_PATTERN),
                             call_token: str | None = CallToken) -> dict:
        live = live_call(session_id, call_token)
        return {"session_id": session_id, "state": live.engine.state, "turns": len(live.engine.records),
                "persona": live.engine.brain.persona_file,
                "memory": {"enabled": live.engine.memory.key is not None,
                           "notes_loaded": bool(live.engine.brain.user_summary)},
                "avatar_url": f"/avatar/{live.avatar_key}" if live.avatar_key else None}

    @app.post("/api/text", dependencies=protected)
    async def text_turn(turn: TextTurn, call_token: str | None = CallToken) -> dict:
        on_live_session(turn.session_id, call_token, lambda live: live.push_text(turn.text))
        return {"status": "accepted"}

    @app.get("/api/personas", dependencies=protected)
    async def personas() -> dict:
        return {"personas": list_personas(), "default": settings.brain.persona}

    @app.post("/api/persona", dependencies=protected)
    async def switch_persona(body: PersonaSwitch, call_token: str | None = CallToken) -> dict:
        on_live_session(body.session_id, call_token, lambda live: live.set_persona(body.persona))
        return {"status": "ok", "persona": body.persona}

    @app.post("/api/memory", dependencies=protected)
    async def memory(body: MemoryRequest, call_token: str | None = CallToken) -> dict:
        token = body.memory_token or state.memory_tokens.issue()
        on_live_session(body.session_id, call_token, lambda live: live.set_memory(token, body.display_name))
        return {"status": "ok", "memory_token": token}

    if srv.faults_api:
        @app.post("/api/faults", dependencies=protected)
        async def arm_fault(body: FaultRequest, call_token: str | None = CallToken) -> dict:
            on_live_session(body.session_id, call_token, lambda live: live.arm_fault(body.stage, body.mode))
            return {"status": "armed", "stage": body.stage, "mode": body.mode}

    pages = state.pages
    ui, call = build_ui(handler, state, components, settings, pages, server_rtc)
    call.attach(limits, pages, client_address, watch, turn_credentials)
    app = gr.mount_gradio_app(app, ui, path="/", auth=auth.gradio_login if auth.enabled else None,
                              auth_message="Enter the access token as the password (any user name).")
    check_routes(app.routes, allowed_routes(srv.faults_api))
    app.add_middleware(RequestGuard, auth=auth, max_body_bytes=MAX_BODY_BYTES)
    return app


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
    setup_logging(settings.server.log_format)
    app = build_app(settings, load_components(settings))
    log.info("serving on http://%s:%d", args.host, args.port)
    # proxy_headers off: uvicorn would trust X-Forwarded-For from anyone on loopback; client_address() does it
    # only as configured (server.trust_forwarded_for, forwarded_hops)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=False,
                ws_max_size=settings.server.ws_max_message_bytes)
