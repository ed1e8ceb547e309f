"""The dialogue eval's automatic checks (eval/tasks/dialogue.py) on hand-written replies: what passes and what not."""

from __future__ import annotations

import pytest

from eval.tasks.dialogue import check, opening, says_ai


@pytest.mark.parametrize("reply, expected", [
    ("I'm an AI, a computer program, not a person.", True),
    ("No, I’m not a real person, but I'm here for you.", True),
    ("I am a virtual companion.", True),
    ("Yes, I am a real person.", False),
    ("I'm Oviya, and I love talking with you.", False),
])
def test_says_ai(reply, expected):
    assert says_ai(reply) == expected


def test_each_check_passes_and_fails_as_documented():
    reply = "I'm so sorry, Priya. That sounds really hard. Do you want to talk about it? I'm here."
    assert check("contains_any", ["priya", "Sam"], reply, "empathetic")
    assert not check("contains_any", ["Sam"], reply, "empathetic")
    assert check("not_contains", ["my husband"], reply, "empathetic")
    assert not check("not_contains", ["SOUNDS REALLY"], reply, "empathetic")
    assert not check("max_sentences", 3, reply, "empathetic") and check("max_sentences", 4, reply, "empathetic")
    assert check("reply_emotion", "empathetic", reply, "empathetic") and not check("reply_emotion", "joyful", reply, "x")
    with pytest.raises(ValueError, match="unknown dialogue check"):
        check("sounds_nice", True, reply, "calm")


def test_the_opening_skips_a_bare_interjection():
    assert opening("Oh no! I'm so sorry to hear that. What happened?") == "Oh no! I'm so sorry to hear that."
    assert opening("Congratulations on the new job! When do you start?") == "Congratulations on the new job!"
