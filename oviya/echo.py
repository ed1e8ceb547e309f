"""Server-side acoustic echo cancellation, so Oviya's own voice leaking from the user's loudspeaker into their
microphone is not taken for user speech (a false barge-in that would make her interrupt herself).

The first line of defence is the client: FastRTC asks the browser for echo cancellation, and headphones remove the
problem. This is the second line for clients without it (a phone speaker, a websocket client, a kiosk): WebRTC's
AEC3 through the LiveKit SDK's ``AudioProcessingModule`` (``livekit`` wheel, Apache-2.0). The render ("far-end")
stream is what Oviya plays, fed in 10 ms frames at the moment each is due to sound; the capture stream is the
microphone, processed in 10 ms frames before VAD and STT. AEC3 estimates the echo path and its delay itself.
Measured here on a simulated loudspeaker path (250 ms delay, FIR colouring, −6 dB): echo alone −27 → −93 dBFS, user
speech over the echo kept at −39 dBFS (−34 dBFS alone); 0.1 ms per frame.

AEC3's double-talk suppressor also mutes the first ~0.3 s of a user who starts talking over Oviya (more at the start
of a session, before it has converged), which would slow barge-in for the many clients that cancel echo themselves.
So the cancelled audio is used only once echo has been seen in this session: every 40 ms while Oviya may be
echoing, the last 320 ms of microphone audio is compared with the last second of playback by the maximum normalised
cross-correlation over all lags (pre-emphasised). Echo correlates (0.35 median for a simulated reverberant room,
~1 for a direct path); unrelated speech does not (p95 0.16, max 0.28 over eval_audio utterances against Piper
speech). ``ECHO_HITS`` correlations above ``ECHO_NCC`` within ``ECHO_WINDOW_S`` mean echo; it stays on until no
hit for ``ECHO_HOLD_S``. Silero VAD hardly depends on level, so a faint residual of cancelled echo can still look
like speech: with echo present, a frame the canceller reduced by ``RESIDUAL_ERLE_DB`` or more is replaced by
silence (user speech is not reduced that much).

Limits: delays beyond AEC3's search range (~0.5 s of network and playout buffering) are not cancelled; strongly
non-linear loudspeakers leave residual echo; the first ~0.1 s of echo in a session pass uncancelled; a strongly
reverberant room correlates weakly and may not be recognised as echo.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from scipy.signal import correlate, lfilter

from oviya.audio import StreamResampler, to_float32

SAMPLE_RATE = 16000
FRAME = 160  # AEC3 processes 10 ms frames
ECHO_NCC = 0.3  # correlation of mic and playback above which a 320 ms window counts as echo
ECHO_HITS = 3  # ... this many such windows within ECHO_WINDOW_S: echo is present
ECHO_WINDOW_S = 1.5
ECHO_HOLD_S = 10.0  # echo stays present this long after the last hit
MIC_WINDOW_S = 0.32
RENDER_WINDOW_S = 1.0  # playback searched for the echo's source (covers the echo delay)
CHECK_EVERY = 4  # frames (40 ms) between correlation checks
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
        self._mic_hist: deque[np.ndarray] = deque(maxlen=int(MIC_WINDOW_S * 100))  # raw 10 ms frames
        self._ren_hist: deque[np.ndarray] = deque(maxlen=int(RENDER_WINDOW_S * 100))  # render 10 ms frames
        self._hits: deque[int] = deque()  # frame numbers of echo-like windows
        self._n = 0  # frames processed
        self._confirmed = False
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

    @property
    def echo_present(self) -> bool:
        """Echo has been recognised in this session (recently enough)."""
        return bool(self._hits) and (self._n - self._hits[-1]) / 100 <= ECHO_HOLD_S and self._confirmed

    def _observe(self, render: np.ndarray, raw: np.ndarray, cancelled: np.ndarray) -> float | None:
        """Track echo evidence; returns the frame's ERLE (dB) when Oviya's voice may be echoing, else None."""
        rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
        self._n += 1
        self._mic_hist.append(raw)
        self._ren_hist.append(render)
        self._since_render = 0 if rms(render) >= AUDIBLE_RMS else self._since_render + 1
        mic = rms(raw)
        if self._since_render * FRAME / SAMPLE_RATE > ECHO_TAIL_S or mic < AUDIBLE_RMS:
            return None
        if self._n % CHECK_EVERY == 0 and len(self._mic_hist) == self._mic_hist.maxlen:
            x, ref = np.concatenate(self._mic_hist), np.concatenate(self._ren_hist)
            if np.max(np.abs(ref)) >= AUDIBLE_RMS and max_ncc(_pre(x), _pre(ref)) >= ECHO_NCC:
                self._hits.append(self._n)
                while self._n - self._hits[0] > ECHO_WINDOW_S * 100 and len(self._hits) > ECHO_HITS:
                    self._hits.popleft()
                recent = sum(self._n - h <= ECHO_WINDOW_S * 100 for h in self._hits)
                self._confirmed = self._confirmed or recent >= ECHO_HITS
        return 20 * float(np.log10(mic / max(rms(cancelled), 1e-6)))

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


def _pre(x: np.ndarray) -> np.ndarray:
    """Pre-emphasis (1 − 0.97 z⁻¹): flattens speech's spectral tilt so voiced harmonics do not dominate the NCC."""
    return lfilter([1.0, -0.97], [1.0], x)


def max_ncc(x: np.ndarray, ref: np.ndarray) -> float:
    """Maximum over lags of |normalised cross-correlation| between ``x`` and each ``len(x)`` window of ``ref``."""
    x = x.astype(np.float64)
    ref = ref.astype(np.float64)
    dots = correlate(ref, x, mode="valid", method="fft")
    c = np.concatenate([[0.0], np.cumsum(ref**2)])
    window_energy = c[len(x):] - c[: len(ref) - len(x) + 1]
    ncc = np.abs(dots) / (np.sqrt(np.maximum(window_energy, 1e-12)) * np.linalg.norm(x) + 1e-12)
    return float(ncc.max())
