"""The receive jitter buffer of the caller's microphone on the server.

aiortc 1.16 gives every audio receiver ``JitterBuffer(capacity=16, prefetch=4)`` (aiortc/rtcrtpreceiver.py): a 20 ms
frame is decoded only once four later frames have arrived, so everything the user says reaches the VAD ~80–100 ms
late, and the end of their turn with it. Browsers' NetEQ adapts its delay to the network's jitter instead; aiortc
has no setting for it, so :func:`set_audio_prefetch` replaces the buffer of a call's audio receivers after the offer
is answered (before any media flows) with one of ``server.jitter_prefetch_frames`` frames. Fewer frames: less delay,
less tolerance of reordered or bursty packets (a late packet is dropped, a 20 ms gap in the microphone audio).
"""

from __future__ import annotations

import logging
from typing import Any

from aiortc.jitterbuffer import JitterBuffer

log = logging.getLogger(__name__)

_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"  # aiortc's private field (pinned aiortc==1.16.0; tested)
_CAPACITY = 16  # aiortc's own audio capacity


def set_audio_prefetch(pc: Any, prefetch: int) -> int:
    """Give the audio receivers of ``pc`` (an ``aiortc.RTCPeerConnection``) a jitter buffer of ``prefetch`` frames.

    Returns:
        how many receivers were changed (0 when aiortc no longer has the field: logged, aiortc's default stays).
    """
    changed = 0
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "audio":
            continue
        receiver = transceiver.receiver
        if not hasattr(receiver, _ATTRIBUTE):
            log.warning("aiortc's receiver has no %s: its own audio jitter buffer stays", _ATTRIBUTE)
            return changed
        setattr(receiver, _ATTRIBUTE, JitterBuffer(capacity=_CAPACITY, prefetch=prefetch))
        changed += 1
    return changed
