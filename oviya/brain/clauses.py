"""Cutting streamed LLM text into clauses for TTS (each cleaned for speech by :mod:`oviya.brain.speech`).

The first audio should not wait for a whole sentence: a clause ends at a sentence end (. ! ? …), a line break, or
a comma/semicolon/colon/dash once it holds ``min_words`` words (short enough to synthesise fast, long enough for
natural prosody — the trade-off pipecat's and LiveKit's sentence aggregators make at sentence level).
"""

from __future__ import annotations

import re

from oviya.brain.speech import clean_for_speech

_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "etc.", "e.g.", "i.e.", "a.m.", "p.m."}
_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)|\n+")
_CLAUSE_END = re.compile(r"[,;:]+(?=\s)|\s[–—-]\s")


def ends_sentence(clause: str) -> bool:
    """True when a clause closes a sentence (. ! ? …, possibly followed by a closing quote or bracket)."""
    return clause.rstrip("\"')]").endswith((".", "!", "?", "…"))


def sentences(text: str) -> list[str]:
    """Split ``text`` into sentences: after . ! ? … (not after an abbreviation such as "Dr.") and at line breaks.

    Returns:
        the sentences in order, stripped; those without a letter or digit are dropped.
    """
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if _ends_sentence_at(text[start : m.end()], m):
            out.append(text[start : m.end()])
            start = m.end()
    out.append(text[start:])
    return [s.strip() for s in out if _speakable(s)]


def _ends_sentence_at(text: str, m: re.Match[str]) -> bool:
    """A sentence-end match ``m`` that closes ``text`` (the text up to it) ends a sentence: a line break, or the
    last word is no abbreviation ("Dr.")."""
    words = text.split()
    return m.group().startswith("\n") or not words or words[-1].lower() not in _ABBREVIATIONS


def _speakable(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


class ClauseChunker:
    """Accumulates text deltas and releases complete clauses.

    Args:
        min_words: a comma-type boundary ends a clause only after this many words.
        first_min_words: the same for the first clause (default ``min_words``): a short first clause starts the
            audio sooner.
    """

    def __init__(self, min_words: int, first_min_words: int | None = None) -> None:
        self.min_words = min_words
        self.first_min_words = first_min_words or min_words
        self._released = 0
        self._buf = ""

    def push(self, delta: str) -> list[str]:
        """Add a text delta; return the clauses it completed (cleaned, non-empty)."""
        self._buf += delta
        out = []
        while (cut := self._next_cut()) is not None:
            clause, self._buf = self._buf[:cut], self._buf[cut:]
            if _speakable(cleaned := clean_for_speech(clause)):
                out.append(cleaned)
                self._released += 1
        return out

    def flush(self) -> list[str]:
        """Return whatever remains as a last clause."""
        rest, self._buf = clean_for_speech(self._buf), ""
        return [rest] if _speakable(rest) else []

    def _next_cut(self) -> int | None:
        """End index of the earliest complete clause in the buffer, or None."""
        cuts = []
        for m in _SENTENCE_END.finditer(self._buf):
            if _ends_sentence_at(self._buf[: m.end()], m):
                cuts.append(m.end())
                break
        min_words = self.min_words if self._released else self.first_min_words
        for m in _CLAUSE_END.finditer(self._buf):
            if len(self._buf[: m.start()].split()) >= min_words:
                cuts.append(m.end())
                break
        return min(cuts) if cuts else None
