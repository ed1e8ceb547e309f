"""Echo guard: keep Oviya's own voice, leaking from the user's speaker into their microphone, from being taken for
user speech (a false barge-in that would make her interrupt herself).

First line of defence is the client: FastRTC asks the browser for echo cancellation, and headphones remove the
problem. This guard is the server-side second line, an energy gate in the manner of a speakerphone's echo
suppressor (no adaptive filter): while Oviya's audio is sounding, a microphone chunk only counts as speech when it is
louder than the echo her playback would cause by ``barge_in.echo_margin_db``. The expected echo is the loudest
playback frame of the last ``MAX_ECHO_DELAY_S`` (the echo path delay is unknown) times the coupling gain, estimated
as a running median of mic/playback level ratios, which robustly tracks the echo and ignores brief user speech.
Chunks below the gate are replaced by silence before VAD.

Limits (documented in README): user speech quieter than the echo plus margin cannot barge in; the gate does not
remove echo mixed into real user speech; the first ~0.3 s of the first reply use a conservative prior gain.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from oviya.audio import rms_dbfs

MAX_ECHO_DELAY_S = 0.6  # playout + network + device latency an echo may lag the frame's due time by
PRIOR_GAIN_DB = -6.0  # assumed coupling until enough playback has been heard (a loud speakerphone)
MIN_RATIOS = 10  # chunks of playback before the estimate replaces the prior
RATIO_WINDOW = 120  # chunks (~4 s) in the running median
SILENT_DB = -60.0  # playback quieter than this causes no echo worth gating


class EchoGuard:
    """Gates microphone chunks against the recently played reply audio.

    Args:
        margin_db: how far above the expected echo a chunk must be to pass.
    """

    def __init__(self, margin_db: float) -> None:
        self.margin_db = margin_db
        self._played: deque[tuple[float, float]] = deque()  # (due time, dBFS) of output frames
        self._ratios: deque[float] = deque(maxlen=RATIO_WINDOW)

    def on_output(self, pcm: np.ndarray, due: float) -> None:
        """Record an output frame that starts playing at clock time ``due``."""
        self._played.append((due, rms_dbfs(pcm)))

    def forget(self, after: float) -> None:
        """Output frames due after ``after`` were taken back (pause/flush): they will not sound."""
        while self._played and self._played[-1][0] > after:
            self._played.pop()

    def gate(self, chunk: np.ndarray, now: float) -> np.ndarray:
        """The chunk as is when it may be user speech, or silence when it is explained by echo.

        Args:
            chunk: float32 16 kHz microphone audio that arrived at clock time ``now``.
        """
        while self._played and self._played[0][0] < now - MAX_ECHO_DELAY_S - 1.0:
            self._played.popleft()
        recent = [db for due, db in self._played if now - MAX_ECHO_DELAY_S <= due <= now]
        if not recent or max(recent) < SILENT_DB:
            return chunk
        ref_db, mic_db = max(recent), rms_dbfs(chunk)
        self._ratios.append(mic_db - ref_db)
        gain_db = float(np.median(self._ratios)) if len(self._ratios) >= MIN_RATIOS else PRIOR_GAIN_DB
        if mic_db >= ref_db + gain_db + self.margin_db:
            return chunk
        return np.zeros_like(chunk)
