"""Oviya's own backchannels: a short "mm-hmm" in a pause of a long user turn, without taking the turn.

Listeners backchannel in pauses inside the speaker's turn, not at its end (Yngve 1970; Ward & Tsukahara 2000 found
them after a pause cue of a few hundred ms). The policy fires once per pause, only when the user has spoken for a
while (a short question needs an answer, not an "mm-hmm"), and never more often than once per ``min_interval_s``.
Decisions use stream time only, so they are tested on a virtual clock.
"""

from __future__ import annotations

from oviya.config import BackchannelSettings


class BackchannelPolicy:
    """When to backchannel, and what to say.

    Args:
        settings: ``backchannel`` section.
    """

    def __init__(self, settings: BackchannelSettings) -> None:
        self.settings = settings
        self._last_s: float | None = None  # stream time of the last backchannel
        self._pause_of: float | None = None  # the pause (its speech end) already answered
        self._count = 0

    def decide(self, now_s: float, speech_end_s: float | None, pause_s: float | None, voiced_s: float) -> str | None:
        """The phrase to say now, or None.

        Args:
            now_s: stream time (s).
            speech_end_s: end of the user's last speech (identifies the pause).
            pause_s: length of the current pause inside the user's turn (s), None while they speak.
            voiced_s: speech so far in this turn (s).
        """
        s = self.settings
        if not s.enabled or pause_s is None or speech_end_s is None or speech_end_s == self._pause_of:
            return None
        if pause_s < s.pause_ms / 1000 or voiced_s < s.min_voiced_s:
            return None
        if self._last_s is not None and now_s - self._last_s < s.min_interval_s:
            return None
        self._last_s, self._pause_of = now_s, speech_end_s
        phrase = s.phrases[self._count % len(s.phrases)]
        self._count += 1
        return phrase
