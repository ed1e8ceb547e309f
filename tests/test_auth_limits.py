"""Auth (OVIYA_AUTH_TOKEN) and limits on a real server (``hardened_server``: tests/conftest.py HARDENED_ENV).

Each test poses as its own client through X-Forwarded-For (the server trusts it, as behind the Spaces proxy), so
per-client limits of one test never touch another.
"""

import asyncio
import json
import zlib

import httpx
import pytest
import websockets
from conftest import TOKEN
from wsclient import Call, live_call, ws_url

from oviya.client import OfferRefused, talk
from oviya.config import LimitSettings
from oviya.server.ice import TurnConfigError, rtc_configuration
from oviya.server.limits import CallLimits, LimitExceeded

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def client_headers(name: str) -> dict[str, str]:
    """X-Forwarded-For as the trusted proxy (server.forwarded_hops 1) sends it: the visitor's address last."""
    return {"X-Forwarded-For": f"10.0.0.{zlib.crc32(name.encode()) % 250 + 1}"}


def test_http_api_needs_the_bearer_token(hardened_server):
    url = hardened_server.url
    with httpx.Client(base_url=url) as http:
        assert http.get("/health").status_code == 200  # open: load balancers and Spaces probe it
        for method, path, body in [("get", "/api/personas", None), ("get", "/metrics", None),
                                   ("post", "/api/text", {"session_id": "x", "text": "hi"}),
                                   ("post", "/webrtc/offer", {"type": "offer", "webrtc_id": "x", "sdp": "v=0"})]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                r = http.request(method, path, json=body, headers=headers)
                assert r.status_code == 401 and "bearer" in r.json()["detail"], (path, headers, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
        assert http.get("/api/personas", headers=AUTH).json()["default"] == "oviya"
        metrics = http.get("/metrics", headers=AUTH).text
        names = {line.split("{")[0].split(" ")[0] for line in metrics.splitlines() if line and line[0] != "#"}
        assert names and all(n.startswith("oviya_") for n in names), names
        assert "oviya_process_resident_memory_bytes" in names and "oviya_asyncio_tasks" in names


def test_webrtc_offer_with_the_token_gets_a_spoken_reply(hardened_server, clip):
    url = hardened_server.url
    audio, _ = clip("stt/alsa/Front_Center.wav")
    with pytest.raises(OfferRefused) as refused:
        asyncio.run(talk(url, audio, listen_s=1))
    assert refused.value.status == 401
    result = asyncio.run(talk(url, audio, listen_s=30, until_answers=1, token=TOKEN))
    turn = result.answers()[0]
    assert turn["outcome"] == "answered" and "front" in turn["user_text"].lower()


def test_websocket_needs_the_token_in_the_url(hardened_server):
    url = hardened_server.url

    async def run() -> tuple[dict, int]:
        async with websockets.connect(ws_url(url, "wrong")) as ws:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            return msg, closed.value.rcvd.code

    msg, code = asyncio.run(run())
    assert msg["data"]["event"] == "error" and msg["data"]["code"] == "unauthorized"
    assert code == 1008


def test_gradio_page_asks_for_the_token_at_login(hardened_server):
    url = hardened_server.url
    with httpx.Client(base_url=url) as http:
        assert http.get("/config").status_code == 401  # the UI's API is closed before login
        assert http.post("/login", data={"username": "me", "password": "wrong"}).status_code == 400
        assert http.post("/login", data={"username": "me", "password": TOKEN}).status_code == 200
        assert http.get("/config").status_code == 200  # the session cookie carries the login to the UI's calls


def test_one_connection_per_client_the_second_is_refused_with_a_clear_error(hardened_server):
    url = hardened_server.url
    headers = client_headers("connections")

    async def run() -> tuple[list[dict], list[dict]]:
        async with Call(url, TOKEN, headers) as first, httpx.AsyncClient(base_url=url, headers=AUTH) as http:
            await first.registered(http)
            async with Call(url, TOKEN, headers) as second:
                await asyncio.wait_for(second.closed.wait(), 10)
            async with Call(url, TOKEN, client_headers("someone else")) as other:  # another client is served
                await other.registered(http)
            return second.events(), first.events("error")

    refused, first_errors = asyncio.run(run())
    assert refused == [{"event": "error", "code": "max_connections_per_client",
                        "message": "at most 1 simultaneous calls per client"}]
    assert first_errors == []


def test_turns_beyond_the_per_minute_limit_are_refused_and_recorded(hardened_server):
    url, transcripts = hardened_server.url, hardened_server.transcripts

    async def run() -> Call:
        async with live_call(url, TOKEN, client_headers("turns")) as (call, http):
            for n in range(4):  # limit: 3 a minute
                r = await http.post("/api/text", json={"session_id": call.sid, "text": f"Say the number {n}."})
                assert r.status_code == 200
                await call.wait_turns(n + 1)
            return call

    call = asyncio.run(run())
    outcomes = [t["outcome"] for t in call.turns()]
    assert outcomes == ["answered"] * 3 + ["refused"], outcomes
    error = call.events("error")[-1]
    assert error["code"] == "rate_limited" and "3 a minute" in error["message"]
    saved = [json.loads(line) for line in (transcripts / f"{call.sid}.jsonl").read_text().splitlines()]
    assert [t["outcome"] for t in saved] == outcomes  # refused turns are kept in the transcript too


def test_a_call_is_ended_after_the_max_session_length_with_an_error_first(hardened_server):
    url = hardened_server.url

    async def run() -> Call:
        async with live_call(url, TOKEN, client_headers("long call")) as (call, _http):
            await asyncio.wait_for(call.closed.wait(), 60)  # max_session_s 40
            return call

    call = asyncio.run(run())
    assert call.events("error")[-1]["code"] == "session_time_limit"


def test_speech_longer_than_the_max_utterance_is_cut_and_answered(hardened_server, clip):
    url = hardened_server.url
    audio, _ = clip("stt/picovoice-leopard/test.wav")  # 5.9 s of continuous reading; max_utterance_s 3

    async def run() -> Call:
        async with live_call(url, TOKEN, client_headers("long utterance")) as (call, _http):
            await call.speak(audio)
            await call.wait_for(lambda e: e["event"] == "turn" and e["end_reason"] == "max_length")
            await call.wait_for(lambda e: e["event"] == "turn" and e["outcome"] == "answered")
            return call

    call = asyncio.run(run())
    assert any(e["code"] == "max_utterance" for e in call.events("error"))
    cut = next(t for t in call.events("turn") if t["end_reason"] == "max_length")
    assert cut["outcome"] != "continued"  # the cut holds: the rest of the speech is not merged back into it
    assert "quilter" in " ".join(t["user_text"].lower() for t in call.events("turn"))


def test_server_logs_are_json_lines_carrying_the_session_id(hardened_server):
    url = hardened_server.url

    async def run() -> str:
        async with live_call(url, TOKEN, client_headers("logs")) as (call, http):
            await http.post("/api/text", json={"session_id": call.sid, "text": "Hello!"})
            await call.wait_turns(1)
            return call.sid

    sid = asyncio.run(run())
    lines = [json.loads(line) for line in hardened_server.log.read_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["session_id"] == sid]
    assert {"time", "level", "name", "message"} <= set(mine[0])
    messages = " | ".join(line["message"] for line in mine)
    assert "session started" in messages and "turn 1 answered" in messages, messages


def limits(**kw) -> tuple[CallLimits, list[float]]:
    now = [0.0]
    s = {"max_sessions": 3, "max_connections_per_client": 2, "max_turns_per_minute": 2, "max_session_s": 60,
         "max_stt_runs_per_turn": 12} | kw
    return CallLimits(LimitSettings(**s), pending_ttl_s=30, clock=lambda: now[0]), now


def test_call_limits_count_calls_per_client_and_forget_offers_that_never_connect():
    lim, now = limits()
    lim.open("a1", "1.1.1.1")
    lim.open("a2", "1.1.1.1")
    with pytest.raises(LimitExceeded) as e:
        lim.open("a3", "1.1.1.1")
    assert e.value.code == "max_connections_per_client"
    lim.started("a1")
    lim.open("b1", "2.2.2.2")
    with pytest.raises(LimitExceeded) as e:
        lim.open("c1", "3.3.3.3")
    assert e.value.code == "max_sessions"
    now[0] = 31.0  # a2 and b1 never started: their offers expire; a1 started and still counts
    lim.open("c1", "3.3.3.3")
    assert len(lim) == 2 and lim.client_of("a1") == "1.1.1.1"
    lim.close("a1")
    lim.started("ui-call")  # a Gradio call: its own client, counted against max_sessions
    assert lim.client_of("ui-call") == "session:ui-call" and len(lim) == 2


def test_turns_per_minute_slide_with_time_per_client():
    lim, now = limits()
    lim.open("a", "1.1.1.1")
    lim.open("b", "1.1.1.1")
    lim.admit_turn("a")
    now[0] = 30.0
    lim.admit_turn("b")  # same client: the second of its 2 turns a minute
    with pytest.raises(LimitExceeded) as e:
        lim.admit_turn("a")
    assert e.value.code == "rate_limited" and "try again in 30 s" in e.value.message
    now[0] = 60.5  # the first turn left the window
    lim.admit_turn("a")


def test_hf_turn_relay_without_hf_token_fails_at_start_up_with_a_clear_message(monkeypatch, settings):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    server = settings.server
    with pytest.raises(TurnConfigError, match="HF_TOKEN"):
        rtc_configuration(server.model_copy(update={"ice_hosts": [], "turn": "hf"}))
    loopback = server.model_copy(update={"ice_hosts": ["127.0.0.1"], "turn": "hf"})
    assert rtc_configuration(loopback) == (None, {"iceServers": []})  # loopback tests win
    assert rtc_configuration(server.model_copy(update={"ice_hosts": [], "turn": "none"})) == (None, None)
