"""Text for a voice: strip what a TTS would read out literally (markdown, list bullets, emoji) and spell numbers.

Numbers are spelled with ``num2words`` so every TTS backend says them the same way (Piper's phonemiser and CSM's
tokenizer treat digits differently); emoji are found with the ``emoji`` package's Unicode tables.
"""

from __future__ import annotations

import re

import emoji
from num2words import num2words

_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_MARKS = re.compile(r"\*\*|__|[*`#>]")
_LIST_ITEM = re.compile(r"^\s*(?:[-+•]|\d+[.)])\s+", re.MULTILINE)
_CODE_FENCE = re.compile(r"```")
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.!?;:])")
_SENTENCE = re.compile(r"[^.!?…]*[A-Za-z0-9][^.!?…]*(?:[.!?…]+|$)")

_MONEY = re.compile(r"([$£€])\s?(\d+(?:,\d{3})*(?:\.\d+)?)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b")
_YEAR = re.compile(r"\b(1[1-9]\d\d|20\d\d)\b(?!\.\d)")
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?)(?![\w.]\d)")
_CURRENCY = {"$": "dollars", "£": "pounds", "€": "euros"}


def _words(number: str, to: str = "cardinal") -> str:
    return num2words(float(number.replace(",", "")) if "." in number else int(number.replace(",", "")), to=to)


def spell_numbers(text: str) -> str:
    """Digits → words: money ($20 → twenty dollars), percentages, ordinals (3rd → third), years
    (1999 → nineteen ninety-nine), other integers and decimals."""
    text = _MONEY.sub(lambda m: f"{_words(m.group(2))} {_CURRENCY[m.group(1)]}", text)
    text = _PERCENT.sub(lambda m: f"{_words(m.group(1))} percent", text)
    text = _ORDINAL.sub(lambda m: _words(m.group(1), "ordinal"), text)
    text = _YEAR.sub(lambda m: _words(m.group(1), "year"), text)
    return _NUMBER.sub(lambda m: _words(m.group(1)), text)


def clean_for_speech(text: str) -> str:
    """Strip markdown, bullets and emoji, spell numbers, and collapse whitespace, so the TTS reads only words."""
    text = _MD_LINK.sub(r"\1", text)
    text = _LIST_ITEM.sub(" ", text)
    text = _MD_MARKS.sub("", text)
    text = emoji.replace_emoji(text, replace=" ")
    text = spell_numbers(text)
    return _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", text)).strip()


def is_plain(text: str) -> bool:
    """True when raw model text has no markdown marks, list items, code fences or emoji (a persona style rule)."""
    return not (_MD_MARKS.search(text) or _LIST_ITEM.search(text) or _CODE_FENCE.search(text)
                or _MD_LINK.search(text) or emoji.emoji_count(text))


def sentences(text: str) -> list[str]:
    """The sentences of ``text``: runs ending in . ! ? … (a trailing unterminated run counts as one), stripped."""
    return [m.group().strip() for m in _SENTENCE.finditer(text) if m.group().strip()]


def count_sentences(text: str) -> int:
    """Sentences in ``text`` (see :func:`sentences`)."""
    return len(sentences(text))
