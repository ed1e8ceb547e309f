"""The allow-list of every route the app serves (``"METHODS path"``, ``"WS path"`` for websockets).

:func:`oviya.server.app.build_app` refuses to start when the app serves anything else, so a library upgrade that adds
a route (FastRTC's telephone routes, FastAPI's docs) is caught at start-up and in CI (tests/test_security.py), and
the new route is looked at before it is added here.
"""

from __future__ import annotations

# Oviya's own routes (oviya/server/app.py); ``POST /api/faults`` only with ``server.faults_api``.
OVIYA = frozenset({
    "GET /api/personas",
    "GET /api/session/{session_id}",
    "GET /avatar/{key}",
    "GET /health",
    "GET /metrics",
    "POST /api/memory",
    "POST /api/persona",
    "POST /api/text",
    "POST /webrtc/offer",
    "WS /websocket/offer",
})
FAULTS = frozenset({"POST /api/faults"})

# Gradio 5.50's page and its API (login-protected by Gradio when OVIYA_AUTH_TOKEN is set, except its login page and
# static files).
GRADIO = frozenset({
    "GET /",
    "GET /assets/{path:path}",
    "GET /config",
    "GET /config/",
    "GET /favicon.ico",
    "GET /gradio_api/app_id",
    "GET /gradio_api/app_id/",
    "GET /gradio_api/call/{api_name}/{event_id}",
    "GET /gradio_api/custom_component/{id}/{environment}/{type}/{file_name}",
    "GET /gradio_api/deep_link",
    "GET /gradio_api/dev/reload",
    "GET /gradio_api/file/{path:path}",
    "GET /gradio_api/file={path_or_url:path}",
    "GET /gradio_api/heartbeat/{session_hash}",
    "GET /gradio_api/info",
    "GET /gradio_api/info/",
    "GET /gradio_api/login_check",
    "GET /gradio_api/login_check/",
    "GET /gradio_api/openapi.json",
    "GET /gradio_api/proxy={url_path:path}",
    "GET /gradio_api/queue/data",
    "GET /gradio_api/queue/status",
    "GET /gradio_api/startup-events",
    "GET /gradio_api/stream/{session_hash}/{run}/{component_id}/playlist-file",
    "GET /gradio_api/stream/{session_hash}/{run}/{component_id}/playlist.m3u8",
    "GET /gradio_api/stream/{session_hash}/{run}/{component_id}/{segment_id}.{ext}",
    "GET /gradio_api/theme.css",
    "GET /gradio_api/token",
    "GET /gradio_api/token/",
    "GET /gradio_api/upload_progress",
    "GET /gradio_api/user",
    "GET /gradio_api/user/",
    "GET /gradio_api/vibe-code",
    "GET /gradio_api/vibe-code/",
    "GET /logout",
    "GET /manifest.json",
    "GET /monitoring",
    "GET /monitoring/summary",
    "GET /monitoring/{key}",
    "GET /pwa_icon",
    "GET /pwa_icon/{size}",
    "GET /robots.txt",
    "GET /static/{path:path}",
    "GET /svelte/{path:path}",
    "GET /theme.css",
    "GET,HEAD /openapi.json",
    "HEAD /",
    "HEAD /gradio_api/file={path_or_url:path}",
    "HEAD /gradio_api/proxy={url_path:path}",
    "POST /gradio_api/api/{api_name}",
    "POST /gradio_api/api/{api_name}/",
    "POST /gradio_api/call/{api_name}",
    "POST /gradio_api/call/{api_name}/",
    "POST /gradio_api/cancel",
    "POST /gradio_api/component_server",
    "POST /gradio_api/component_server/",
    "POST /gradio_api/process_recording",
    "POST /gradio_api/queue/join",
    "POST /gradio_api/reset",
    "POST /gradio_api/reset/",
    "POST /gradio_api/run/{api_name}",
    "POST /gradio_api/run/{api_name}/",
    "POST /gradio_api/stream/{event_id}",
    "POST /gradio_api/stream/{event_id}/close",
    "POST /gradio_api/undo-vibe-edit",
    "POST /gradio_api/undo-vibe-edit/",
    "POST /gradio_api/upload",
    "POST /gradio_api/vibe-code",
    "POST /gradio_api/vibe-code/",
    "POST /gradio_api/vibe-edit",
    "POST /gradio_api/vibe-edit/",
    "POST /gradio_api/vibe-starter-queries",
    "POST /gradio_api/vibe-starter-queries/",
    "POST /login",
    "POST /login/",
    "WS /gradio_api/stream/{event_id}",
})


def allowed_routes(faults_api: bool) -> set[str]:
    """Every route the app may serve."""
    return set(OVIYA | GRADIO | (FAULTS if faults_api else frozenset()))
