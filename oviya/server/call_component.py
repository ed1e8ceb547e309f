"""The Gradio page's call: FastRTC's ``WebRTC`` component made safe for a public page.

FastRTC's component takes the call id (``webrtc_id``) from the browser in every request — the offer, the stream's
inputs, the transcript stream — so anyone who learns a call's id can drive or read it, and its offers skip the
server's call limits. :class:`CallComponent` changes that:

- an offer is counted by :class:`~oviya.server.limits.CallLimits` like an API offer (same client address, same
  limits, ``session_exists`` for an id already open) and binds the call to the Gradio session (``session_hash``) that
  made it; every later page event finds its call through that binding, never through an id the browser sends;
- TURN credentials are fetched per call (rate-limited, :class:`~oviya.server.ice.TurnCredentials`) and never put into
  the page's public configuration (``/config``), nor is the server's own RTC configuration.
"""

from __future__ import annotations

import logging
import re
from abc import ABCMeta
from collections.abc import Callable
from typing import Any

import gradio as gr
from fastapi.responses import JSONResponse
from fastrtc import WebRTC
from gradio.components.base import server

from oviya.server.ice import TurnConfigError, TurnCredentials
from oviya.server.limits import SESSION_ID_PATTERN, CallLimits, LimitExceeded

log = logging.getLogger(__name__)


class PageCalls:
    """Which call each Gradio session (page) has: ``session_hash`` → ``webrtc_id``, set by the page's offer; and
    which pages asked for their calls to be recorded (the page's checkbox, :mod:`oviya.recording`)."""

    def __init__(self) -> None:
        self._by_page: dict[str, str] = {}
        self._recorded_pages: set[str] = set()

    def want_recording(self, session_hash: str | None, on: bool) -> None:
        """The page ``session_hash`` ticked (or cleared) "record my call"."""
        if session_hash:
            (self._recorded_pages.add if on else self._recorded_pages.discard)(session_hash)

    def recording_wanted(self, webrtc_id: str | None) -> bool:
        """Whether the page of call ``webrtc_id`` wants it recorded (False for a call without a page)."""
        return any(w == webrtc_id and p in self._recorded_pages for p, w in self._by_page.items())

    def bind(self, session_hash: str, webrtc_id: str) -> None:
        self._by_page[session_hash] = webrtc_id

    def of(self, session_hash: str | None) -> str | None:
        """The call of the page (Gradio session) ``session_hash``, or None."""
        return self._by_page.get(session_hash) if session_hash else None

    def of_event(self, request: gr.Request | None) -> str | None:
        """The call of the page that sent a Gradio event."""
        return self.of(getattr(request, "session_hash", None))

    def forget(self, webrtc_id: str) -> None:
        for page in [p for p, w in self._by_page.items() if w == webrtc_id]:
            del self._by_page[page]


def _failed(code: str) -> JSONResponse:
    """FastRTC's failure answer, which its page shows."""
    return JSONResponse({"status": "failed", "meta": {"error": code}}, status_code=200)


class _Subclass(type(WebRTC)):
    """Gradio's component metaclass registers a class's events and writes a ``.pyi`` stub beside its module at
    import; :class:`CallComponent` adds neither events nor ``__init__``, so it is made without that."""

    def __new__(mcls, name: str, bases: tuple, attrs: dict) -> type:
        return ABCMeta.__new__(mcls, name, bases, attrs)


class CallComponent(WebRTC, metaclass=_Subclass):
    """``WebRTC`` for the page; call :meth:`attach` before the app serves it."""

    # Gradio serves a custom component's frontend from <its class's module folder>/templates: FastRTC's, unchanged.
    __module__ = WebRTC.__module__

    def get_block_name(self) -> str:
        return "webrtc"

    def attach(self, limits: CallLimits, pages: PageCalls, client_address: Callable[[Any], str],
               watch: Callable[[str, Any], None], turn: TurnCredentials | None) -> None:
        """Args:
            limits: the server's call limits.
            pages: the page → call bindings.
            client_address: the client address of a request (X-Forwarded-For as configured).
            watch: ``watch(webrtc_id, peer_connection)`` releases the call when its connection fails or closes.
            turn: per-call TURN credentials, or None (no TURN).
        """
        self._limits, self._pages, self._client_address = limits, pages, client_address
        self._watch, self._turn = watch, turn

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("server_rtc_configuration", None)  # the server's TURN credentials stay on the server
        config["rtc_configuration"] = None  # the browser asks turn() at each call start
        return config

    @server
    async def turn(self, _: Any, request: gr.Request) -> dict[str, Any]:
        """The browser's RTC configuration for one call: short-lived TURN credentials, or none."""
        if self._turn is None:
            return {}
        try:
            return await self._turn.for_client(self._client_address(request))
        except (LimitExceeded, TurnConfigError) as e:
            log.warning("TURN credentials refused: %s", e)
            return {"error": str(e)}

    @server
    async def offer(self, body: Any, request: gr.Request) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get("webrtc_id"), str):
            return _failed("bad_offer")
        webrtc_id = body["webrtc_id"]
        session_hash = await _session_hash(request)
        if not re.fullmatch(SESSION_ID_PATTERN, webrtc_id) or session_hash is None:
            return _failed("bad_offer")
        if body.get("type") != "offer":  # a trickled ICE candidate: only for the page's own call
            if self._pages.of(session_hash) != webrtc_id:
                return _failed("connection_closed")
            return await self.handle_offer(body, self.set_additional_outputs(webrtc_id))
        try:
            self._limits.open(webrtc_id, self._client_address(request))
        except LimitExceeded as e:
            return _failed(e.code)
        try:
            response = await self.handle_offer(body, self.set_additional_outputs(webrtc_id))
        except Exception as e:  # noqa: BLE001 - aiortc refuses an offer it cannot answer
            log.warning("page offer refused: %r", e)
            response = _failed("bad_offer")
        if isinstance(response, JSONResponse):
            self._limits.close(webrtc_id)
            return response
        self._pages.bind(session_hash, webrtc_id)
        if (pc := self.pcs.get(webrtc_id)) is not None:
            self._watch(webrtc_id, pc)
        return response

    @server
    async def quit_output_stream(self, body: Any, request: gr.Request) -> dict[str, bool]:
        webrtc_id = self._pages.of(await _session_hash(request))
        if webrtc_id is not None and webrtc_id in self.additional_outputs:
            self.additional_outputs[webrtc_id].quit.set()
        return {"success": True}

    def set_input_gradio(self, request: gr.Request, *args: Any) -> None:  # type: ignore[override]
        """The page's inputs (persona, name, memory token) go to the page's own call."""
        webrtc_id = self._pages.of_event(request)
        if webrtc_id is not None and args:
            self.set_input(webrtc_id, webrtc_id, *args[1:])

    def set_input_on_submit(self, request: gr.Request, *args: Any) -> None:  # type: ignore[override]
        self.set_input_gradio(request, *args)

    async def page_outputs(self, request: gr.Request, fn: Callable[..., Any]):
        """The page's own call's extra outputs, through ``fn``; nothing for a page without a call."""
        webrtc_id = self._pages.of_event(request)
        if webrtc_id is None:
            return
        async for outputs in self.output_stream(webrtc_id):
            yield fn(*outputs.args)


async def _session_hash(request: Any) -> str | None:
    """The Gradio session of a component-server request (its JSON body, already parsed and cached by Gradio)."""
    try:
        body = await request.json()
    except Exception:  # noqa: BLE001 - not JSON: no session
        return None
    value = body.get("session_hash") if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None

