"""A real WebRTC client (aiortc) talks to the running app over loopback (DESIGN.md: OVIYA_ICE_HOSTS=127.0.0.1)."""

import asyncio

from oviya.client import talk


def test_webrtc_call_hears_an_utterance_and_answers_aloud(app_server, clip):
    audio, _ = clip("stt/picovoice-cheetah/test_en.wav")
    result = asyncio.run(talk(app_server, audio, listen_s=10.0, until_answers=1))
    assert result.mic_finished is not None
    voiced = result.voiced_s(result.mic_finished, result.mic_finished + 10.0)
    assert voiced >= 1.0, f"only {voiced:.2f} s of voiced reply audio within 10 s"
    user = [e for e in result.events if e.get("event") == "transcript" and e["role"] == "user"]
    assert user and "platform" in user[0]["text"].lower(), result.events
    turn = result.answers()[0]
    assert turn["v2v_ms"] is not None and turn["v2v_ms"] > 0
