"""gateway.inspect.detect.scan._has_phrase: whether a stretch of text holds one of a
class's context words, held to the plain definition (any run of up to the longest
phrase's words, joined, is one of them) on text made of those words and others."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.inspect.detect import patterns, scan

TOKEN = re.compile(r"[a-z0-9]+(?:['/-][a-z0-9]+)*")
CLASSES = ("care_staff", "care_service")


def has_phrase_by_definition(cls: str, text: str) -> bool:
    phrases = {" ".join(TOKEN.findall(w.lower())) for w in patterns.CONTEXT_WORDS[cls]} - {""}
    longest = max(len(p.split()) for p in phrases)
    words = TOKEN.findall(text.lower())
    return any(
        " ".join(words[i : i + n]) in phrases
        for i in range(len(words))
        for n in range(1, longest + 1)
    )


def pieces(cls: str) -> st.SearchStrategy[str]:
    words = patterns.CONTEXT_WORDS[cls]
    # Context words whole and cut at a word (a phrase's first word alone, its rest),
    # other words, and what separates them.
    cut = [part for w in words for part in (w.split(" ", 1) if " " in w else [w])]
    other = ["the", "Jane", "Doe", "on", "3/4", "at", "9:15", "team's", "well-being"]
    return st.sampled_from([*words, *cut, *other]).map(
        lambda w: w.upper() if len(w) % 3 == 0 else w
    ) | st.sampled_from([" ", ", ", "\n", " - ", "."])


@pytest.mark.parametrize("cls", CLASSES)
@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_has_phrase_as_defined(cls: str, data: st.DataObject) -> None:
    text = "".join(data.draw(st.lists(pieces(cls), max_size=25)))
    assert scan._has_phrase(cls, text, 0, len(text)) == has_phrase_by_definition(cls, text)
    middle = len(text) // 2
    assert scan._has_phrase(cls, text, middle, len(text)) == has_phrase_by_definition(
        cls, text[middle:]
    )


@pytest.mark.parametrize("cls", CLASSES)
def test_every_context_word_is_found_alone_and_in_a_sentence(cls: str) -> None:
    for word in patterns.CONTEXT_WORDS[cls]:
        text = f"Notes: we spoke about {word.upper()} yesterday."
        assert scan._has_phrase(cls, text, 0, len(text)), word
