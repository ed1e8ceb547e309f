"""FastRTC's websocket protocol (``WS /websocket/offer``): validated input, and the voice loop over it."""

import asyncio
import audioop  # mu-law codec, as FastRTC's websocket protocol uses (deprecated in 3.13; we run 3.11)
import base64
import json
import time
import uuid

import numpy as np
import websockets

from oviya.audio import to_int16

CHUNK = 320  # 20 ms at 16 kHz, the handler's input rate


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/websocket/offer"


async def next_json(ws, timeout: float = 5.0) -> dict:
    """The next message, past the session's token, the avatar's announcement and video frames."""
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if msg.get("type") != "oviya" or msg["data"]["event"] not in ("session", "avatar", "video_frame"):
            return msg


async def next_json_event(ws, name: str, timeout: float = 5.0) -> dict:
    """The data of the next Oviya event called ``name``."""
    deadline = time.monotonic() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if msg.get("type") == "oviya" and msg["data"]["event"] == name:
            return msg["data"]


def test_garbage_gets_error_events_and_the_connection_survives(app_server):
    bad_inputs = [
        "this is not json",
        b"\x00\x01binary",
        json.dumps({"event": "media", "media": {"payload": "AAAA"}}),  # media before start
        json.dumps({"event": "teleport"}),
        json.dumps([1, 2, 3]),
    ]

    async def run():
        async with websockets.connect(ws_url(app_server)) as ws:
            for bad in bad_inputs:
                await ws.send(bad)
                msg = await next_json(ws)
                assert msg["type"] == "oviya" and msg["data"]["event"] == "error", msg
            await ws.send(json.dumps({"event": "start", "websocket_id": uuid.uuid4().hex}))
            for bad in [json.dumps({"event": "media", "media": {"payload": "***not base64***"}}),
                        json.dumps({"event": "media", "media": {"payload": base64.b64encode(bytes(40_000)).decode()}})]:
                # 40 kB of audio: over the 2 s media cap, under the 64 kB message cap (a bigger message closes the
                # connection: tests/test_security.py)
                await ws.send(bad)
                msg = await next_json(ws)
                assert msg["data"]["event"] == "error", msg
            await ws.send(json.dumps({"event": "ping"}))
            assert (await next_json(ws)) == {"event": "pong"}

    asyncio.run(run())


def test_a_second_client_is_served_a_spoken_reply(app_server, clip):
    audio, _ = clip("stt/picovoice-cheetah/test_en.wav")
    pcm = to_int16(np.concatenate([audio, np.zeros(16000 * 2, np.float32)]))

    async def run():
        async with websockets.connect(ws_url(app_server)) as ws:
            await ws.send(json.dumps({"event": "start", "websocket_id": uuid.uuid4().hex}))
            received: list[dict] = []

            async def reader():
                while True:
                    received.append(json.loads(await ws.recv()))

            task = asyncio.create_task(reader())
            t0 = time.monotonic()
            for k, i in enumerate(range(0, len(pcm), CHUNK)):
                payload = base64.b64encode(audioop.lin2ulaw(pcm[i : i + CHUNK].tobytes(), 2)).decode()
                await ws.send(json.dumps({"event": "media", "media": {"payload": payload}}))
                await asyncio.sleep(max(0.0, t0 + (k + 1) * 0.02 - time.monotonic()))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(m.get("data", {}).get("event") == "turn" for m in received):
                await asyncio.sleep(0.1)
            task.cancel()
            return received

    received = asyncio.run(run())
    media = [m for m in received if m.get("event") == "media"]
    events = [m["data"] for m in received if m.get("type") == "oviya"]
    assert any(e["event"] == "transcript" and e["role"] == "user" and e["text"] for e in events), events
    assert any(e["event"] == "turn" and e["v2v_ms"] for e in events), events
    reply = np.frombuffer(b"".join(audioop.ulaw2lin(base64.b64decode(m["media"]["payload"]), 2) for m in media), np.int16)
    assert len(reply) >= 24000 * 0.5 and np.abs(reply).max() > 1000  # at least 0.5 s of audible 24 kHz reply


def test_persona_switch_over_the_http_api_reaches_the_live_session(app_server):
    import httpx

    sid = uuid.uuid4().hex

    async def run() -> list[dict]:
        async with websockets.connect(ws_url(app_server)) as ws, httpx.AsyncClient(base_url=app_server) as http:
            await ws.send(json.dumps({"event": "start", "websocket_id": sid}))
            session = await next_json_event(ws, "session")
            http.headers["X-Call-Token"] = session["call_token"]  # the call's secret for call-scoped requests
            assert "sunny" in (await http.get("/api/personas")).json()["personas"]
            for _ in range(50):  # the session registers on its first frames
                await ws.send(json.dumps({"event": "media", "media": {"payload": base64.b64encode(bytes(320)).decode()}}))
                r = await http.post("/api/persona", json={"session_id": sid, "persona": "sunny"})
                if r.status_code != 404:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 200, r.text
            bad = await http.post("/api/persona", json={"session_id": sid, "persona": "../../etc/passwd"})
            assert bad.status_code == 422 and "known" in bad.json()["detail"]
            r = await http.post("/api/memory", json={"session_id": sid, "display_name": "test-user"})
            assert r.status_code == 200 and r.json()["memory_token"], r.text
            r = await http.post("/api/text", json={"session_id": sid, "text": "Hello, how is your evening going?"})
            assert r.status_code == 200
            events = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if msg.get("type") == "oviya":
                    events.append(msg["data"])
                    if msg["data"]["event"] == "turn":
                        break
            return events

    events = asyncio.run(run())
    assert {"event": "persona", "name": "sunny", "display_name": "Sunny"} in events
    assert {"event": "memory", "status": "enabled"} in events
    turn = next(e for e in events if e["event"] == "turn")
    assert turn["route"] == "llm" and turn["emotion"] == "joyful" and turn["reply_text"]  # Sunny's default emotion
