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
        self._backchannels = {tuple(words_of(w)) for w in settings.backchannel_words}
        self._echo_min_s = settings.echo_min_ms / 1000
        self._echo_share = settings.echo_word_share

    def _only_backchannels(self, words: list[str]) -> bool:
        """True when ``words`` split into consecutive backchannel entries (single or multi-word), left to right."""
        longest = max(map(len, self._backchannels), default=0)
        ends = {0}  # word positions reachable by whole entries
        for i in range(1, len(words) + 1):
            if any(i - k in ends and tuple(words[i - k:i]) in self._backchannels for k in range(1, longest + 1)):
                ends.add(i)
        return len(words) in ends

    def residual_echo(self, voiced_s: float, echo_present: bool) -> bool:
        """Before any transcription: while echo is being cancelled, talk-over with less than ``echo_min_ms`` of
        voice (s) is more likely residual echo than speech, so she resumes without asking STT."""
        return echo_present and voiced_s < self._echo_min_s

    def judge(self, heard: str, reply_text: str) -> Verdict:
        """The verdict for an overlap transcribed as ``heard`` while Oviya was saying ``reply_text``.

        ``noise``: no words. ``backchannel``: nothing but backchannels, one or several in a row ("yeah", "uh huh,
        okay", "oh wow, I see"), each a whole entry of ``backchannel_words``. ``echo``: at
        least ``echo_word_share`` of the words are in her reply (her voice through the microphone, not yet learnt by
        the echo canceller). Else ``barge_in``.
        """
        words = words_of(heard)
        if not words:
            return "noise"
        if self._only_backchannels(words):
            return "backchannel"
        said = set(words_of(reply_text))
        if sum(w in said for w in words) >= self._echo_share * len(words):
            return "echo"
        return "barge_in"
