"""The server's receive jitter buffer (oviya/server/jitter.py) on a real aiortc peer connection: the private field it
replaces must still exist in the pinned aiortc, or this fails when aiortc changes."""

import asyncio

from aiortc import RTCPeerConnection

from oviya.server.jitter import set_audio_prefetch


def test_a_calls_audio_receiver_gets_the_configured_prefetch():
    async def check() -> None:
        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")  # left alone
        try:
            assert set_audio_prefetch(pc, 1) == 1
            audio, video = (t.receiver for t in pc.getTransceivers())
            assert audio._RTCRtpReceiver__jitter_buffer._prefetch == 1
            assert video._RTCRtpReceiver__jitter_buffer._prefetch == 0  # aiortc's video buffer
        finally:
            await pc.close()

    asyncio.run(check())
