"""Splitting a long text into the parts zapw can send (zapa_bridge.outbound.text_split)."""

from __future__ import annotations

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from zapa_bridge.outbound.text_split import UncuttableText, split_text

LIMIT = 4096


def test_a_text_within_the_limit_is_one_part_as_given():
    assert split_text("  hello  ", LIMIT) == ["  hello  "]


def test_a_10000_character_reply_is_three_parts_none_cut_inside_a_word():
    words = [f"w{n:05d}" for n in range(1430)]  # 7 characters with the space
    text = " ".join(words)[:10_000]
    parts = split_text(text, LIMIT)
    assert len(text) == 10_000
    assert len(parts) == 3
    assert all(len(part) <= LIMIT for part in parts)
    assert " ".join(parts) == text  # cut at spaces only, in order


def test_the_last_paragraph_break_wins_over_sentences():
    paragraph = "A sentence of the reply. " * 60  # 1,500 characters
    text = "\n\n".join([paragraph.strip()] * 4)
    parts = split_text(text, LIMIT)
    assert parts == ["\n\n".join([paragraph.strip()] * 2)] * 2


def test_a_sentence_end_wins_over_a_space():
    text = ("Sentence number one goes here. " * 200).strip()
    first = split_text(text, LIMIT)[0]
    assert first.endswith("here.")
    assert len(first) > LIMIT - 40


def test_an_early_heading_is_not_a_part_of_its_own():
    text = "Title\n\n" + "word " * 1000
    assert split_text(text, LIMIT)[0].startswith("Title\n\nword")


def test_a_word_longer_than_the_limit_is_cut_between_graphemes():
    flags = "🇧🇷" * 3000  # each flag two code points, one grapheme
    parts = split_text(flags, LIMIT)
    assert [len(part) for part in parts] == [4096, 1904]
    accented = "e\u0301" * 2500
    parts = split_text(accented, LIMIT)
    assert [len(part) for part in parts] == [4096, 904]
    assert all(not part.startswith("\u0301") for part in parts)


def test_a_grapheme_longer_than_the_limit_is_refused():
    with pytest.raises(UncuttableText):
        split_text("e" + "\u0301" * LIMIT, LIMIT)


ALPHABET = st.sampled_from(["a", "b", " ", "\n", ".", "é", "e\u0301", "👩‍👩‍👧", "🇧🇷", "\r\n"])


@settings(max_examples=60, deadline=None)
@given(st.lists(ALPHABET, min_size=0, max_size=400), st.integers(min_value=8, max_value=60))
def test_parts_fit_keep_every_grapheme_whole_and_lose_only_spaces(pieces, limit):
    text = "".join(pieces)
    parts = split_text(text, limit)
    assert all(len(part) <= limit for part in parts)
    graphemes = [g for part in parts for g in regex.findall(r"\X", part) if not g.isspace()]
    assert graphemes == [g for g in regex.findall(r"\X", text) if not g.isspace()]
