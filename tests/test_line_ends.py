"""gateway/mail/line_ends.py: the line-end questions, held to a regular expression that
says the same thing slowly, with Hyperscan and with the bytes methods."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dkim import sign
from gateway.mail import line_ends, octet_search
from gateway.mail.content import BARE_LINE_ENDING, content_problem

BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
CRLF_ONLY = [line_ends.crlf_only, line_ends.counted_crlf_only, line_ends.scanned_crlf_only]
DOT_LINE = [line_ends.has_dot_line, line_ends.searched_dot_line, line_ends.scanned_dot_line]
# Short strings of the octets that matter, and some that do not.
OCTETS = st.binary(max_size=40).map(lambda raw: bytes(b"\r\n.a\x00"[octet % 5] for octet in raw))


def test_hyperscan_answers_here() -> None:
    """The CI machines are x86_64: the Hyperscan path is there for these tests to hold."""
    assert octet_search.available
    assert line_ends.crlf_only is not line_ends.counted_crlf_only


@pytest.mark.parametrize("prefix", [b"a\r\n", b"a\n"])
def test_large_data_is_answered_as_small(prefix: bytes) -> None:
    """Either side of LARGE, the same answers (a bare LF, or none, then CRLF lines)."""
    for size in (line_ends.LARGE - 1, line_ends.LARGE, line_ends.LARGE + 1):
        data = prefix + b"x" * (size - len(prefix))
        assert line_ends.crlf_only(data) == (prefix == b"a\r\n")
        assert line_ends.has_dot_line(data[:-1] + b"\r\n.") is True


@pytest.mark.parametrize("crlf_only", CRLF_ONLY)
@settings(max_examples=400)
@given(data=OCTETS)
def test_crlf_only_is_no_bare_cr_or_lf(crlf_only: Callable[[bytes], bool], data: bytes) -> None:
    assert crlf_only(data) == (BARE.search(data) is None)


@pytest.mark.parametrize("crlf_only", CRLF_ONLY)
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", True),
        (b"a\r\nb\r\n", True),
        (b"\r\n", True),
        (b"\n", False),  # at the start
        (b"a\r", False),  # at the end
        (b"a\r\r\n", False),
        (b"a\n\r", False),
        (b"a\r\n\n", False),
        (b"x" * 1_000_000 + b"\n" + b"\r\n" * 1000, False),  # far in
    ],
)
def test_crlf_only_cases(crlf_only: Callable[[bytes], bool], data: bytes, expected: bool) -> None:
    assert crlf_only(data) is expected


@pytest.mark.parametrize("has_dot_line", DOT_LINE)
@settings(max_examples=400)
@given(data=OCTETS)
def test_has_dot_line_is_crlf_dot(has_dot_line: Callable[[bytes], bool], data: bytes) -> None:
    assert has_dot_line(data) == (b"\r\n." in data)


@pytest.mark.parametrize("has_dot_line", DOT_LINE)
def test_a_dot_at_the_very_start_is_not_a_dot_line(has_dot_line: Callable[[bytes], bool]) -> None:
    """The first line has no CRLF before it: its callers look at it themselves."""
    assert not has_dot_line(b".a\r\nb\r\n")
    assert has_dot_line(b"a\r\n.b\r\n")
    assert has_dot_line(b"a" * 500_000 + b"\r\n.\r\n")


def test_a_large_message_with_a_bare_lf_is_refused_and_mended_for_signing() -> None:
    """Past LARGE the Hyperscan search decides: DATA refuses a bare LF far in (the
    smuggling check fails closed), and DKIM's normalisation still mends it."""
    lines = b"x" * 76 + b"\r\n"
    data = lines * 2000 + b"bare\n" + lines * 10
    assert len(data) > line_ends.LARGE
    assert content_problem(data) == BARE_LINE_ENDING
    assert content_problem(lines * 2000) is None
    assert sign._crlf(data) == lines * 2000 + b"bare\r\n" + lines * 10
