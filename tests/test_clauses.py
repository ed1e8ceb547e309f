from oviya.brain.clauses import ClauseChunker, ends_sentence, sentences
from oviya.brain.speech import clean_for_speech, count_sentences, is_plain, spell_numbers


def feed(chunker: ClauseChunker, text: str) -> list[str]:
    out = []
    for i in range(0, len(text), 3):  # LLM-like small deltas
        out += chunker.push(text[i : i + 3])
    return out + chunker.flush()


def test_first_clause_is_released_at_a_comma_once_long_enough():
    c = ClauseChunker(min_words=4)
    assert c.push("Oh, so hard, ") == []  # "Oh" and "Oh, so hard" are shorter than 4 words
    assert c.push("and I am here for you, ") == ["Oh, so hard, and I am here for you,"]


def test_sentences_split_but_abbreviations_and_decimals_do_not():
    out = feed(ClauseChunker(4), "Dr. Smith said 3.5 hours. Take a break! Then rest")
    assert out == ["Dr. Smith said three point five hours.", "Take a break!", "Then rest"]


def test_markdown_and_emoji_are_not_spoken():
    assert clean_for_speech("**Great** idea 😊\n- first\n- [link](http://x.y)") == "Great idea first link"
    assert feed(ClauseChunker(4), "🙂🙂. ") == []


def test_sentence_ends_are_recognised_through_closing_quotes():
    assert ends_sentence('He said "stop."') and ends_sentence("Really?") and not ends_sentence("and then,")


def test_the_first_clause_may_be_shorter():
    c = ClauseChunker(min_words=4, first_min_words=2)
    assert c.push("Oh, I see, so hard, ") == ["Oh, I see,"]  # 2 words suffice for the first clause only
    assert c.push("and then, she left. ") == ["so hard, and then,", "she left."]


def test_numbers_are_spelled_for_every_voice():
    assert spell_numbers("It costs $20, 15% off, on May 3rd 1999, for 2,500 people.") == (
        "It costs twenty dollars, fifteen percent off, on May third nineteen ninety-nine, for two thousand, five "
        "hundred people.")


def test_persona_style_checks():
    assert is_plain("Sure, I can help with that. What do you need?")
    assert not is_plain("Here you go:\n1. first\n2. second") and not is_plain("Nice 🎉") and not is_plain("**bold**")
    assert count_sentences("One. Two! Three? And four") == 4 and count_sentences("") == 0


def test_a_whole_text_is_split_into_sentences_but_not_after_an_abbreviation():
    assert sentences("Hi there. Dr. Smith called!\nI can't  sleep… Why?") == \
        ["Hi there.", "Dr. Smith called!", "I can't  sleep…", "Why?"]
    assert sentences("no full stop") == ["no full stop"] and sentences(" ... ") == []
