"""gateway.mail.address_lists reads header fields' addresses as email.utils.getaddresses
does, whatever the field: the common forms by a regular expression, the rest by
getaddresses itself."""

from __future__ import annotations

from email.utils import getaddresses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mail import address_lists
from gateway.mail.address_lists import address_list

WORDS = st.sampled_from(
    ["Jane", "Doe", "Dr.", "J.", "O'Neil", "a.b", "x-y", "=?utf-8?q?Jos=C3=A9?="]
)
ADDRESSES = st.sampled_from(
    ["jane@clinic.example.org", "a.b+c@x-y.example", "UPPER@Example.ORG", "o'neil@h.org", "a@b"]
)
# Pieces of the forms the regular expression takes, and of many it does not.
PIECES = st.one_of(
    WORDS,
    ADDRESSES,
    ADDRESSES.map(lambda address: f"<{address}>"),
    st.sampled_from([" ", "  ", "\t", ",", ", ", '"', '"Doe, Jane"', "(note)", "<", ">", "@"]),
    st.sampled_from([":", ";", "group:", "\\", ".", "[1.2.3.4]", "\u00e9", "\r\n ", "\n"]),
)


@given(st.lists(st.lists(PIECES, max_size=8).map("".join), min_size=1, max_size=3))
@settings(max_examples=1500, deadline=None)
def test_any_fields_give_what_getaddresses_gives(values: list[str]) -> None:
    assert address_list(values) == getaddresses(values)


SPACES = st.sampled_from(["", " ", "  ", "\t", " \t"])
NAMES = st.lists(st.tuples(WORDS, SPACES), min_size=1, max_size=3).map(
    lambda words: "".join(word + space for word, space in words)
)
QUOTED = st.text(alphabet='abc ,.<>@\\"()', max_size=8).map(lambda text: f'"{text}"')
ITEMS = st.one_of(
    st.tuples(SPACES, ADDRESSES, SPACES).map("".join),
    st.tuples(SPACES, ADDRESSES, SPACES).map(lambda t: f"{t[0]}<{t[1]}>{t[2]}"),
    st.tuples(st.one_of(NAMES, QUOTED), SPACES, ADDRESSES).map(lambda t: f"{t[0]}{t[1]}<{t[2]}>"),
)
FIELDS = st.tuples(
    st.lists(ITEMS, min_size=1, max_size=3),
    st.sampled_from([",", ", ", " ,", ",,"]),
).map(lambda t: t[1].join(t[0]))


@given(st.lists(FIELDS, min_size=1, max_size=2))
@settings(max_examples=1500, deadline=None)
def test_fields_near_the_common_forms_give_what_getaddresses_gives(values: list[str]) -> None:
    assert address_list(values) == getaddresses(values)


@given(st.lists(st.text(alphabet=' "<>@,.;:()\\\tab\u00e9', max_size=30), min_size=1, max_size=2))
@settings(max_examples=1000, deadline=None)
def test_arbitrary_text_gives_what_getaddresses_gives(values: list[str]) -> None:
    assert address_list(values) == getaddresses(values)


@pytest.mark.parametrize(
    "value",
    [
        "Bench Sender <loadgen@bench.example.org>",
        "<inbox@sink.example.org>",
        "jane@clinic.example.org",
        '"Doe, Jane" <jane@clinic.example.org>',
        "Dr. J. Smith <js@clinic.example.org>, nurse@clinic.example.org, <desk@h.org>",
    ],
)
def test_the_common_forms_are_read_without_getaddresses(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = getaddresses([value])
    monkeypatch.setattr(address_lists, "getaddresses", lambda _: pytest.fail("parsed slowly"))
    assert address_list([value]) == expected
