"""Property-based fuzzing (hypothesis) of everything a client can send: websocket messages, HTTP API bodies, and
audio frames into the engine. Every malformed input gets an error (event, 4xx, or AudioFormatError), nothing
crashes, and other clients are still served. Examples are derandomised so CI runs the same inputs each time."""

import asyncio
import base64
import json

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect
from wsclient import live_call, ws_url

from oviya.audio import AudioFormatError
from oviya.engine import TurnEngine

FUZZ = settings(max_examples=220, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
KNOWN_EVENTS = {"start", "media", "stop", "ping"}
MAX_MEDIA_BYTES = 32000  # audio.max_input_frame_s (2 s) of 16 kHz mu-law
WS_MAX_MESSAGE_BYTES = 65536  # server.ws_max_message_bytes

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def _not_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return True
    return False


malformed_ws = st.one_of(
    st.text(max_size=200).filter(_not_json),  # not JSON
    st.binary(min_size=1, max_size=200),  # binary frames
    json_values.filter(lambda v: not isinstance(v, dict)).map(json.dumps),  # JSON, not an object
    st.dictionaries(st.text(max_size=8), json_values, max_size=4)
    .filter(lambda d: d.get("event") not in KNOWN_EVENTS).map(json.dumps),  # no or unknown event
    json_values.map(lambda v: json.dumps({"event": "start", "websocket_id": v})),  # a second start / bad id
    st.one_of(st.text(max_size=60).filter(_not_base64), json_values.filter(lambda v: not isinstance(v, str)))
    .map(lambda p: json.dumps({"event": "media", "media": {"payload": p}})),  # bad payload
    json_values.filter(lambda v: not isinstance(v, dict)).map(lambda m: json.dumps({"event": "media", "media": m})),
    # oversized audio, in messages under the server's 64 kB message cap (a bigger one closes the connection:
    # tests/test_security.py)
    st.integers(MAX_MEDIA_BYTES + 1, WS_MAX_MESSAGE_BYTES * 3 // 4 - 100).map(
        lambda n: json.dumps({"event": "media", "media": {"payload": base64.b64encode(bytes(n)).decode()}})),
)

ENDPOINTS = ["/api/text", "/api/persona", "/api/memory", "/api/faults", "/webrtc/offer"]
sdp_like = st.text(max_size=300).map(lambda t: "v=0\r\n" + t)
malformed_body = st.one_of(
    json_values.map(json.dumps),
    st.binary(max_size=300),
    st.fixed_dictionaries({"session_id": json_values, "text": json_values}).map(json.dumps),
    st.fixed_dictionaries({"session_id": st.text(max_size=300), "persona": st.text(max_size=80)}).map(json.dumps),
    st.fixed_dictionaries({"type": st.sampled_from(["offer", "answer", "ice-candidate", ""]), "webrtc_id": st.text(max_size=200),
                           "sdp": sdp_like}).map(json.dumps),
    st.fixed_dictionaries({"type": st.just("ice-candidate"), "webrtc_id": st.text(max_size=40),
                           "candidate": json_values}).map(json.dumps),
)


def test_malformed_websocket_messages_each_get_an_error_and_the_call_survives(app_server):
    sent = 0
    with connect(ws_url(app_server), max_size=None) as ws:
        ws.send(json.dumps({"event": "start", "websocket_id": "fuzz-websocket"}))

        @FUZZ
        @given(message=malformed_ws)
        def check(message: str | bytes) -> None:
            nonlocal sent
            ws.send(message)
            while True:  # skip status/audio messages; the error must come
                reply = json.loads(ws.recv(timeout=5))
                if reply.get("type") == "oviya" and reply["data"]["event"] == "error":
                    assert reply["data"]["code"] == "bad_message" and reply["data"]["message"]
                    break
            sent += 1

        check()
        ws.send(json.dumps({"event": "ping"}))
        assert json.loads(ws.recv(timeout=5)) == {"event": "pong"}  # the fuzzed connection is still up
    assert sent >= 200
    assert_another_client_is_served(app_server)


def test_malformed_http_bodies_each_get_a_4xx_error_and_the_server_goes_on(app_server):
    sent = 0
    with httpx.Client(base_url=app_server, timeout=30) as http:

        @FUZZ
        @given(path=st.sampled_from(ENDPOINTS), body=malformed_body)
        def check(path: str, body: str | bytes) -> None:
            nonlocal sent
            r = http.post(path, content=body, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (path, body, r.status_code, r.text)
            assert r.json()["detail"], r.text
            sent += 1

        check()
        big = http.post("/api/text", content=b"x" * 2_000_000, headers={"Content-Type": "application/json"})
        assert big.status_code == 413 and big.json()["code"] == "body_too_large"
        assert http.get("/health").json()["status"] == "ok"
    assert sent >= 200
    assert_another_client_is_served(app_server)


def assert_another_client_is_served(url: str) -> None:
    async def run() -> dict:
        async with live_call(url) as (call, http):
            await http.post("/api/text", json={"session_id": call.sid, "text": "Hello there!"})
            return (await call.wait_turns(1))[0]

    turn = asyncio.run(run())
    assert turn["outcome"] == "answered" and turn["reply_text"]


frames = st.one_of(
    st.builds(lambda n, dt: np.zeros(n, dt), st.integers(0, 2000), st.sampled_from([np.int8, np.uint8, np.int32, np.float64, np.complex64, np.bool_])),
    st.builds(lambda n, c: np.zeros((c, n), np.int16), st.integers(0, 800), st.integers(1, 9)),
    st.builds(lambda n, v: np.full(n, v, np.float32), st.integers(1, 800), st.sampled_from([np.nan, np.inf, -np.inf, 1e30])),
    st.builds(lambda a, b, c: np.zeros((a, b, c), np.int16), st.integers(1, 4), st.integers(1, 4), st.integers(1, 40)),
    st.integers(100_000, 200_000).map(lambda n: np.zeros(n, np.int16)),  # longer than max_input_frame_s at 16 kHz
    st.lists(st.integers(-40000, 40000), max_size=50),  # not an array at all
)
rates = st.one_of(st.integers(-10, 7999), st.integers(192_001, 10**7), st.just(16000), st.floats(allow_nan=True),
                  st.none(), st.text(max_size=5))


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_malformed_audio_frames_raise_audio_format_error_and_lose_nothing(components, settings, loop):
    engine = TurnEngine(components, settings)
    checked = 0

    @FUZZ
    @given(pcm=frames, rate=rates)
    def check(pcm, rate) -> None:
        nonlocal checked
        try:
            loop.run_until_complete(_push(engine, pcm, rate))
        except AudioFormatError as e:
            assert str(e)
        checked += 1

    check()
    assert checked >= 200
    # the engine still works after all of it: a typed turn is answered
    loop.run_until_complete(_answer(engine))
    assert engine.records[-1].outcome == "answered"


async def _push(engine: TurnEngine, pcm, rate) -> None:
    engine.push_audio(pcm, rate)


async def _answer(engine: TurnEngine) -> None:
    async with engine:
        engine.push_text("Hello!")
        while (await engine.next_event(30)) is not None and not engine.records:
            pass
