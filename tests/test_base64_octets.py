"""gateway/mail/base64_octets.py: where lines of base64 stop, and whether an encoding
is plainly well formed, held to Python's base64 and to a regular expression that
takes the lines one by one, with Hyperscan and without it."""

from __future__ import annotations

import base64
import binascii
import re

import pybase64
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.inspect.extract import mime
from gateway.mail import base64_octets, octet_search

LINE = re.compile(rb"[A-Za-z0-9+/=]+\r\n")
PARSER_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)")  # as email.feedparser splits
FIRST_FLAW = [base64_octets.first_flaw, base64_octets.matched_first_flaw]
FIRST_FLAW += [base64_octets.scanned_first_flaw] if octet_search.available else []
# Base64 lines and what may spoil them.
PIECES = st.sampled_from(
    [b"QUJD", b"QUJDRA==", b"+/9z", b"\r\n", b"\r", b"\n", b"-", b":", b"\xe9", b"\x00", b" "]
)


def test_hyperscan_answers_here() -> None:
    """The CI machines are x86_64: the Hyperscan path is there for these tests to hold."""
    assert base64_octets.scanned_first_flaw in FIRST_FLAW


def first_bad_line(data: bytes) -> int:
    """The start of the first line that is not base64 characters and a CRLF."""
    position = 0
    while (line := LINE.match(data, position)) is not None:
        position = line.end()
    return position


def first_flawed_line(data: bytes) -> tuple[int, int] | None:
    """The first line, as the parser splits lines, that is empty or holds an octet
    outside base64's alphabet."""
    for line in PARSER_LINE.finditer(data):
        text = line.group().rstrip(b"\r\n")
        if not text or text.strip(base64_octets.ALPHABET):
            return line.span()
    return None


@given(lines=st.lists(st.lists(PIECES, min_size=1, max_size=6), max_size=12), prefix=st.binary())
@settings(max_examples=400, deadline=None)
def test_a_flaw_is_found_in_the_first_line_with_one(
    lines: list[list[bytes]], prefix: bytes
) -> None:
    body = b"".join(b"".join(line) + b"\r\n" for line in lines)
    data = prefix + body + b"tail"
    bad, flawed = first_bad_line(body), first_flawed_line(body)
    for first_flaw in FIRST_FLAW:
        found = first_flaw(data, len(prefix), len(prefix) + len(body))
        if first_flaw is base64_octets.matched_first_flaw:  # the stricter answer
            assert found == (-1 if bad == len(body) else len(prefix) + bad)
        elif flawed is None:
            assert found == -1
        else:
            assert len(prefix) + bad <= found < len(prefix) + flawed[1]


def test_a_long_run_is_scanned_where_it_lies() -> None:
    run = base64.encodebytes(bytes(range(256)) * 4000).replace(b"\n", b"\r\n")
    data = b"head\r\n" + run + b"--b--\r\n"
    assert base64_octets.first_flaw(data, 6, 6 + len(run)) == -1
    spoiled = data[:50_006] + b"?" + data[50_007:]
    assert base64_octets.first_flaw(spoiled, 6, 6 + len(run)) == 50_006


def decoded_without_white_space(encoded: bytes) -> tuple[bytes, bool]:
    """What mime._base64 promises: white space skipped, missing padding added, then
    pybase64's strict decoding; anything it refuses is malformed, decoded leniently by
    the standard library."""
    data = encoded.translate(None, b" \t\r\n")
    try:
        return pybase64.b64decode(data + b"=" * (-len(data) % 4), validate=True), False
    except binascii.Error:
        pass
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    data = data[: len(data) - (len(data) % 4 == 1)]
    return base64.b64decode(data + b"=" * (-len(data) % 4)), True


ENCODED = st.lists(
    st.one_of(
        st.binary(max_size=60).map(base64.b64encode),
        st.sampled_from(
            [b"\r\n", b"\n", b" ", b"\t", b"=", b"==", b"QQ", b"Q", b"-", b"?", b"\x0b"]
        ),
        st.just(b"\r\n" * 40),  # more white space than the end where padding is looked for
    ),
    max_size=12,
).map(b"".join)


@given(ENCODED)
@settings(max_examples=600, deadline=None)
def test_base64_decodes_as_without_its_white_space(encoded: bytes) -> None:
    assert mime._base64(encoded) == decoded_without_white_space(encoded)


@pytest.mark.parametrize(
    ("encoded", "plain"),
    [
        (b"QUJD\r\nREVG\r\n", True),
        (b" QUJD\tRA==\r\n", True),
        (b"QUJDRA", True),  # the decoder finds its padding missing
        (b"QUJD=\r\nREVG", False),
        (b"QUJD?REVG", False),
        (b"QUJD\x0bREVG", False),
        (b"QUJD-_", False),
    ],
)
def test_plainly_well_formed(encoded: bytes, plain: bool) -> None:
    assert base64_octets.plainly_well_formed(encoded) is plain
