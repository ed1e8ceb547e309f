"""A real WebRTC client (aiortc) talks to the running app over loopback (docs/architecture.md: OVIYA_ICE_HOSTS=127.0.0.1)."""

import asyncio

from eval.data import speech_bounds
from oviya.client import talk


def test_webrtc_call_hears_an_utterance_and_answers_aloud(app_server, clip):
    audio, _ = clip("stt/picovoice-cheetah/test_en.wav")
    # keep listening until the turn record arrives (sent once the whole reply has played)
    result = asyncio.run(talk(app_server, audio, listen_s=40.0, until_answers=1))
    assert result.mic_started is not None and result.mic_finished is not None
    speech_end = result.mic_started + speech_bounds(audio)[1]
    voiced = result.voiced_s(speech_end, speech_end + 10.0)
    assert voiced >= 1.0, f"only {voiced:.2f} s of voiced reply audio within 10 s of the end of speech"
    user = [e for e in result.events if e.get("event") == "transcript" and e["role"] == "user"]
    assert user and "platform" in user[-1]["text"].lower(), result.events
    turn = result.answers()[0]
    assert turn["outcome"] == "answered" and turn["v2v_ms"] > 0
    assert all(turn[k] > 0 for k in ("eot_delay_ms", "stt_ms", "llm_ttft_ms", "tts_ttfb_ms")), turn
