"""Server-side acoustic echo cancellation, so Oviya's own voice leaking from the user's loudspeaker into their
microphone is not taken for user speech (a false barge-in that would make her interrupt herself).

The first line of defence is the client: FastRTC asks the browser for echo cancellation, and headphones remove the
problem. This is the second line for clients without it (a phone speaker, a websocket client, a kiosk): WebRTC's
AEC3 through the LiveKit SDK's ``AudioProcessingModule`` (``livekit`` wheel, Apache-2.0). The render ("far-end")
stream is what Oviya plays, fed in 10 ms frames at the moment each is due to sound; the capture stream is the
microphone, processed in 10 ms frames before VAD and STT. AEC3 estimates the echo path and its delay itself.
Measured here on a simulated loudspeaker path (250 ms delay, FIR colouring, −6 dB): echo alone −27 → −93 dBFS, user
speech over the echo kept at −39 dBFS (−34 dBFS alone); 0.1 ms per frame.

AEC3's double-talk suppressor also mutes the first ~0.3 s of a user who starts talking over Oviya, which would slow
barge-in for the many clients that cancel echo themselves. So the cancelled audio is used only once echo has been
seen in this session: while Oviya plays, the canceller's echo return loss enhancement (ERLE: microphone level minus
cancelled level) is tracked; a median above ``ECHO_ERLE_DB`` over ``ECHO_EVIDENCE_S`` of playback means there is echo
to remove. Until then the microphone passes unchanged (the canceller still runs, so it has converged when needed).
Silero VAD hardly depends on level, so even a faint residual of cancelled echo can look like speech: a frame the
canceller reduced by ``RESIDUAL_ERLE_DB`` or more is replaced by silence (user speech is not reduced that much).

Limits: delays beyond AEC3's search range (~0.5 s of network and playout buffering) are not cancelled; strongly
non-linear loudspeakers leave residual echo; the first ``ECHO_EVIDENCE_S`` of echo in a session pass uncancelled.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from oviya.audio import StreamResampler, to_float32

SAMPLE_RATE = 16000
FRAME = 160  # AEC3 processes 10 ms frames
ECHO_ERLE_DB = 10.0  # cancelling removes this much from the microphone while Oviya plays: there is echo
ECHO_EVIDENCE_S = 0.3  # of audible microphone while echo is possible, before deciding
ECHO_TAIL_S = 0.5  # an echo can still arrive this long after the playback fell silent
RESIDUAL_ERLE_DB = 15.0  # a frame the canceller reduced this much was echo only: silence it completely
AUDIBLE_RMS = 10 ** (-55 / 20)  # playback and microphone frames quieter than -55 dBFS are no evidence


class EchoCanceller:
    """Removes the echo of Oviya's playback from the microphone stream.

    Args:
        output_rate: Hz of the played frames given to :meth:`on_output`.
    """

    def __init__(self, output_rate: int) -> None:
        from livekit import rtc

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True)
        self._apm.set_stream_delay_ms(0)  # render frames are fed when due; AEC3 finds the rest of the delay
        self._to16k = StreamResampler(output_rate, SAMPLE_RATE)
        self._render: deque[tuple[float, np.ndarray]] = deque()  # (due time, 16 kHz float32), in play order
        self._pending = np.zeros(0, np.float32)  # capture samples short of a 10 ms frame
        self._erle: deque[float] = deque(maxlen=int(ECHO_EVIDENCE_S * 100) * 4)  # dB, per frame of evidence
        self.echo_present = False
        self._since_render = 10**9  # 10 ms frames since the playback was last audible

    def on_output(self, pcm: np.ndarray, due: float) -> None:
        """Record an output frame (int16 at ``output_rate``) that starts playing at clock time ``due``."""
        self._render.append((due, self._to16k.process(to_float32(pcm))))

    def forget(self, after: float) -> None:
        """Output frames due after ``after`` were taken back (pause/flush): they will not sound."""
        while self._render and self._render[-1][0] > after:
            self._render.pop()

    def process(self, mic: np.ndarray, now: float) -> np.ndarray:
        """Echo-cancel microphone audio that arrived at clock time ``now``.

        Args:
            mic: ``np.ndarray[float32]`` (n,), 16 kHz mono.
        Returns:
            the cancelled audio, float32 16 kHz; a tail shorter than 10 ms is held for the next call, so the output
            may be up to 159 samples shorter or longer than the input.
        """
        buf = np.concatenate([self._pending, mic.astype(np.float32, copy=False)])
        n = len(buf) // FRAME
        out = np.empty(n * FRAME, np.float32)
        for i in range(n):
            t = now - (len(buf) - (i + 1) * FRAME) / SAMPLE_RATE  # arrival time of this frame's end
            render = self._render_until(t)
            self._apm.process_reverse_stream(self._frame(render))
            raw = buf[i * FRAME : (i + 1) * FRAME]
            frame = self._frame(raw)
            self._apm.process_stream(frame)
            cancelled = np.frombuffer(bytes(frame.data), dtype=np.int16) / 32768.0
            erle = self._observe(render, raw, cancelled)
            if not self.echo_present:
                cancelled = raw
            elif erle is not None and erle >= RESIDUAL_ERLE_DB:
                cancelled = np.zeros(FRAME)  # all echo: its faint residual would still look like speech to Silero
            out[i * FRAME : (i + 1) * FRAME] = cancelled
        self._pending = buf[n * FRAME :]
        return out

    def _observe(self, render: np.ndarray, raw: np.ndarray, cancelled: np.ndarray) -> float | None:
        """The frame's ERLE (dB) while Oviya's voice may be echoing and the microphone hears something, collected
        as evidence of echo; None otherwise."""
        rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))  # noqa: E731
        self._since_render = 0 if rms(render) >= AUDIBLE_RMS else self._since_render + 1
        mic = rms(raw)
        if self._since_render * FRAME / SAMPLE_RATE > ECHO_TAIL_S or mic < AUDIBLE_RMS:
            return None
        erle = 20 * float(np.log10(mic / max(rms(cancelled), 1e-6)))
        self._erle.append(erle)
        if len(self._erle) >= ECHO_EVIDENCE_S * 100:
            self.echo_present = float(np.median(self._erle)) >= ECHO_ERLE_DB
        return erle

    def _render_until(self, t: float) -> np.ndarray:
        """The next 10 ms of playback due by ``t`` (zeros while Oviya is silent)."""
        got: list[np.ndarray] = []
        have = 0
        while self._render and self._render[0][0] <= t and have < FRAME:
            due, pcm = self._render.popleft()
            take = pcm[: FRAME - have]
            if len(take) < len(pcm):  # keep the rest of a frame for the next 10 ms
                self._render.appendleft((due + len(take) / SAMPLE_RATE, pcm[len(take):]))
            got.append(take)
            have += len(take)
        frame = np.zeros(FRAME, np.float32)
        if got:
            joined = np.concatenate(got)
            frame[: len(joined)] = joined
        return frame

    def _frame(self, x: np.ndarray):
        pcm = (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)
        return self._rtc.AudioFrame(pcm.tobytes(), SAMPLE_RATE, 1, FRAME)
