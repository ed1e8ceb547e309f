"""What the user's speech over Oviya's reply was: a barge-in, a backchannel, her own echo, or noise.

A pure decision from the overlap's facts (what STT heard, what Oviya was saying, how much voice, whether echo is
present), so the engine only acts on the verdict and the rule is tested without audio or models
(docs/architecture.md, "Turn states").
"""

from __future__ import annotations

import re
from typing import Literal

from oviya.config import BargeInSettings

Verdict = Literal["barge_in", "backchannel", "echo", "noise"]
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def words_of(text: str) -> list[str]:
    """Lower-case words of ``text`` (apostrophes and hyphens inside a word kept: "don't", "uh-huh")."""
    return _WORD.findall(text.lower())


class OverlapJudge:
    """Decides what an overlap was; a verdict other than ``barge_in`` lets Oviya go on.

    Args:
        settings: ``barge_in`` (``backchannel_words``, ``echo_min_ms``, ``echo_word_share``).
    """

    def __init__(self, settings: BargeInSettings) -> None:
        self._backchannels = {w.lower() for w in settings.backchannel_words}
        self._echo_min_s = settings.echo_min_ms / 1000
        self._echo_share = settings.echo_word_share

    def residual_echo(self, voiced_s: float, echo_present: bool) -> bool:
        """Before any transcription: while echo is being cancelled, talk-over with less than ``echo_min_ms`` of
        voice (s) is more likely residual echo than speech, so she resumes without asking STT."""
        return echo_present and voiced_s < self._echo_min_s

    def judge(self, heard: str, reply_text: str) -> Verdict:
        """The verdict for an overlap transcribed as ``heard`` while Oviya was saying ``reply_text``.

        ``noise``: no words. ``backchannel``: only backchannel words ("yeah", "uh huh", "got it").  ``echo``: at
        least ``echo_word_share`` of the words are in her reply (her voice through the microphone, not yet learnt by
        the echo canceller). Else ``barge_in``.
        """
        words = words_of(heard)
        if not words:
            return "noise"
        if all(w in self._backchannels for w in words) or " ".join(words) in self._backchannels:
            return "backchannel"
        said = set(words_of(reply_text))
        if sum(w in said for w in words) >= self._echo_share * len(words):
            return "echo"
        return "barge_in"
