"""gateway.mail.message.parse feeds the parser in pieces (to bound its memory on large
messages): the result must be what parsing the whole message at once gives, wherever a
piece ends: inside a CRLF, a header, a MIME boundary line or a base64 line.
"""

from __future__ import annotations

import base64
import email.policy
import os
import random
import re
from email.message import EmailMessage, Message
from email.parser import BytesParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mail import message as parsing


def multipart(padding: int) -> bytes:
    mail = EmailMessage()
    mail["From"] = "lab@clinic.example.org"
    mail["To"] = "doctor@partner.example.com"
    mail["Subject"] = "scan " + "x" * padding
    mail.set_content("The scan is attached.\n" * 3)
    mail.add_attachment(
        os.urandom(3 * parsing._PIECE // 4), maintype="application", subtype="pdf", filename="s.pdf"
    )
    mail.add_attachment("second part\n" * 20000, subtype="plain", filename="notes.txt")
    return mail.as_bytes(policy=email.policy.SMTP)


def whole(data: bytes) -> bytes:
    return BytesParser(policy=email.policy.compat32).parsebytes(data).as_bytes()


@pytest.mark.parametrize("padding", range(0, 80, 7))
def test_pieces_parse_as_the_whole_message_does(padding: int) -> None:
    data = multipart(padding)
    assert len(data) > 2 * parsing._PIECE
    parsed = parsing.parse(data).message
    assert parsed.as_bytes() == whole(data)
    attachments = [part.get_payload(decode=True) for part in parsed.walk()][2:]
    assert len(attachments[0]) == 3 * parsing._PIECE // 4
    assert attachments[1] == b"second part\r\n" * 20000


def test_a_piece_that_ends_between_cr_and_lf() -> None:
    line = b"a line of text\r\n"
    head = b"Subject: plain\r\nMessage-ID: <p@example.org>\r\n\r\n"
    # Pad so that a piece ends right after a CR.
    body = b"x" * (parsing._PIECE - len(head) - 1) + b"\r\n" + line * 50000
    data = head + body
    assert data[parsing._PIECE - 1 : parsing._PIECE + 1] == b"\r\n"
    parsed = parsing.parse(data)
    assert parsed.message_id == "<p@example.org>"
    assert parsed.message.as_bytes() == whole(data)


# Long runs of base64 lines reach the parser as one token line each; whatever the
# message, the result must be the Message the line-by-line parse gives.


def shape(message: Message) -> list[object]:
    """Everything the parse decides, part by part, as plain values."""
    return [
        (
            part.get_unixfrom(),
            part.items(),
            part._payload if isinstance(part._payload, str) else len(part._payload),
            part.preamble,
            part.epilogue,
            part.get_default_type(),
            [type(defect).__name__ for defect in part.defects],
        )
        for part in message.walk()
    ]


def line_by_line(data: bytes) -> Message:
    return BytesParser(policy=email.policy.compat32).parsebytes(data)


def base64_run(lines: int, seed: int = 0, width: int = 76) -> bytes:
    encoded = base64.b64encode(random.Random(seed).randbytes(lines * width * 3 // 4)).decode()
    lines = (encoded[i : i + width] for i in range(0, len(encoded), width))
    return b"".join(line.encode() + b"\r\n" for line in lines)


def assert_same_as_line_by_line(data: bytes, through_tokens: bool = True) -> None:
    fast = parsing._parse_with_runs_as_tokens(data)
    if through_tokens:
        assert fast is not None, "the runs were not stood in for"
    assert shape(parsing.parse(data).message) == shape(line_by_line(data))
    if fast is not None:
        assert fast.as_bytes() == line_by_line(data).as_bytes()


RUN = base64_run(100)
CASES = {
    "attachment": (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\nHello\r\n--b\r\n"
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + RUN
        + b"--b--\r\n"
    ),
    "run before a boundary, its last line short": (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\n'
        + RUN
        + b"QUJD\r\n--b--\r\n"
    ),
    "run in the preamble and the epilogue": (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        + RUN
        + b"--b\r\n\r\nx\r\n--b--\r\n"
        + RUN
    ),
    "run where headers end, without a blank line": b"Subject: a\r\n" + RUN,
    "run at the end without its last CRLF": b"Subject: a\r\n\r\n" + RUN[:-2],
    "nested message": (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n"
        b'Content-Type: multipart/mixed; boundary="c"\r\n\r\n--c\r\n\r\n'
        + RUN
        + b"--c--\r\n--b--\r\n"
    ),
    "delivery status": (
        b'Content-Type: multipart/report; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
        + RUN
        + b"\r\n--b--\r\n"
    ),
    "unclosed multipart": b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\n' + RUN,
    "two runs with text between": (
        b"Subject: a\r\n\r\n" + RUN + b"text line\r\n" + base64_run(40, 1)
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_long_base64_runs_parse_as_line_by_line(name: str) -> None:
    assert_same_as_line_by_line(CASES[name])


def test_the_mix_of_the_benchmark_parses_as_line_by_line() -> None:
    mail = EmailMessage()
    mail["From"] = "lab@clinic.example.org"
    mail["Subject"] = "scan"
    mail.set_content("The scan is attached.\n")
    scan = os.urandom(600_000)
    mail.add_attachment(scan, maintype="application", subtype="pdf", filename="s.pdf")
    data = mail.as_bytes(policy=email.policy.SMTP)
    assert_same_as_line_by_line(data)
    part = parsing.parse(data).message.get_payload()[1]
    assert part.get_payload(decode=True) == line_by_line(data).get_payload()[1].get_payload(
        decode=True
    )


def test_a_token_found_in_the_message_itself_falls_back_to_line_by_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parsing.secrets, "token_hex", lambda _: "0" * 32)
    planted = b"T" + b"0" * 32 + b"00000000"
    data = b"Subject: a\r\n\r\n" + RUN + b"see " + planted + b"\r\n"
    assert parsing._parse_with_runs_as_tokens(data) is None
    assert_same_as_line_by_line(data, through_tokens=False)


LINES = st.sampled_from(
    [
        b"Subject: x\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\n',
        b'Content-Type: multipart/alternative; boundary="c"\r\n',
        b"Content-Type: message/rfc822\r\n",
        b"Content-Type: message/delivery-status\r\n",
        b"Content-Type: multipart/digest; boundary=b\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b" folded\r\n",
        b"\r\n",
        b"--b\r\n",
        b"--b--\r\n",
        b"--c\r\n",
        b"--c-- \r\n",
        b"--b",
        b"text with words\r\n",
        b"bare\n",
        b"cr\r",
        b"From someone\r\n",
        b"QUJD\r\n",
        b"QUJD",
    ]
)
PIECES = st.one_of(
    LINES.map(lambda line: [line]),
    st.tuples(st.integers(30, 40), st.integers(0, 3), st.sampled_from([76, 4, 1])).map(
        lambda run: [base64_run(run[0], run[1], run[2])]
    ),
)


@given(st.lists(PIECES, max_size=30))
@settings(max_examples=300, deadline=None)
def test_any_arrangement_of_runs_parses_as_line_by_line(pieces: list[list[bytes]]) -> None:
    data = b"".join(line for piece in pieces for line in piece)
    # Every run of lines of base64 is stood in for. A run may take in more: lines a CR
    # or LF alone has split, which the parser takes as it takes the token.
    runs = parsing._runs(data)
    for start, end in runs_line_by_line(data):
        assert any(s <= start and end <= e for s, e in runs)
    assert_same_as_line_by_line(data, through_tokens=False)


# What the runs are, by a regular expression that takes them line by line.
RUN_LINES = re.compile(rb"\n((?:[A-Za-z0-9+/=]+\r\n){32,})")


def runs_line_by_line(data: bytes) -> list[tuple[int, int]]:
    return [match.span(1) for match in RUN_LINES.finditer(data)]


LONG = base64_run(5000, 7)  # 6,580 lines: whole blocks are checked at once
MIDDLE = len(LONG) // 2 - len(LONG) // 2 % 78  # a line start, mid-block
CHANGES = {
    "whole": LONG,
    "a colon": LONG[: MIDDLE + 10] + b":" + LONG[MIDDLE + 11 :],
    "an 8-bit octet": LONG[: MIDDLE + 10] + b"\xe9" + LONG[MIDDLE + 11 :],
    "a dash": LONG[:MIDDLE] + b"--b" + LONG[MIDDLE + 3 :],
    "an empty line": LONG[:MIDDLE] + b"\r\n" + LONG[MIDDLE:],
    "an empty line after a bare CR": LONG[: MIDDLE + 10] + b"\r\r" + LONG[MIDDLE + 12 :],
    "an empty line after a bare LF": LONG[: MIDDLE + 10] + b"\n\n" + LONG[MIDDLE + 12 :],
    "narrower": LONG[:MIDDLE] + base64_run(300, 8, width=64) + LONG[MIDDLE:],
    "wider": LONG[:MIDDLE] + b"QUJD" + LONG[MIDDLE:],
    "cut": LONG[:MIDDLE] + b"QUJD",
    # A CR or LF alone, or a CRLF, only splits a line into shorter lines of base64:
    # nothing the parser takes otherwise than the token, so the run goes on.
    "a bare CR": LONG[: MIDDLE + 10] + b"\r" + LONG[MIDDLE + 11 :],
    "a bare LF": LONG[: MIDDLE + 10] + b"\n" + LONG[MIDDLE + 11 :],
    "a line split": LONG[: MIDDLE + 10] + b"\r\n" + LONG[MIDDLE + 12 :],
}
SPLIT_ONLY = ("a bare CR", "a bare LF", "a line split")
CONTAINERS = {
    "mixed": (b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\n', b"\r\n--b--\r\n"),
    # Its header blocks end at an empty line: one in a run must end the run.
    "delivery status": (
        b'Content-Type: multipart/report; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n",
        b"\r\n--b--\r\n",
    ),
}


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("name", CHANGES)
def test_long_runs_end_where_their_lines_stop_being_base64(container: str, name: str) -> None:
    head, tail = CONTAINERS[container]
    data = head + CHANGES[name] + tail
    if name in SPLIT_ONLY:
        assert parsing._runs(data) == parsing._runs(head + LONG + tail)
    else:
        assert parsing._runs(data) == runs_line_by_line(data)
    assert_same_as_line_by_line(data)


@pytest.mark.parametrize("full_lines", [40, 590, 1023, 1024, 1025, 3000])
def test_lines_of_one_width_are_checked_up_to_the_last_one(full_lines: int) -> None:
    # An attachment's last line is shorter and a boundary follows, together more than
    # a line's 78 octets (as in the benchmark's mix): the block the run ends in is
    # closed in on, not left to the octet-by-octet expression.
    run = base64_run(full_lines, width=76) + b"QUJD" * 15 + b"\r\n"
    data = (
        b'Content-Type: multipart/mixed; boundary="=_mix_boundary"\r\n\r\n--=_mix_boundary\r\n\r\n'
        + run
        + b"--=_mix_boundary--\r\n"
    )
    start = data.index(run)
    assert parsing._lines_of_width(data, start, 76) == start + full_lines * 78
    assert_same_as_line_by_line(data)


# A message of one part: only its header section goes through the parser.

ONE_PART_HEADS = st.lists(
    st.sampled_from(
        [
            b"Subject: x\r\n",
            b"Content-Type: text/plain; charset=utf-8\r\n",
            b"Content-Type: application/pdf\r\n",
            b'Content-Type: multipart/mixed; boundary="b"\r\n',
            b"Content-Type: multipart/mixed\r\n",
            b"Content-Type: message/rfc822\r\n",
            b"Content-Transfer-Encoding: base64\r\n",
            b" folded\r\n",
            b"no colon\r\n",
            b"bare\n",
            b"\n",
            b"cr\r",
            b"From someone\r\n",
            b"\xc3\xa9: eight bit\r\n",
        ]
    ),
    max_size=8,
)
BODY_LINES = st.lists(
    st.sampled_from(
        [
            *(b"text\r\n", b"\r\n", b"--b\r\n", b"--b--\r\n", b"Subject: y\r\n"),
            *(b"\xe9t\xe9\r\n", b"bare\n", b"cr\r", b".\r\n", b"QUJD"),
        ]
    ),
    max_size=12,
)


@given(ONE_PART_HEADS, st.booleans(), BODY_LINES)
@settings(max_examples=400, deadline=None)
def test_a_header_section_parsed_alone_gives_the_line_by_line_message(
    head: list[bytes], blank: bool, body: list[bytes]
) -> None:
    data = b"".join(head) + (b"\r\n" if blank else b"") + b"".join(body)
    alone = parsing._parse_head_alone(data)
    expected = line_by_line(data)
    if alone is not None:
        assert shape(alone) == shape(expected)
        assert alone.as_bytes() == expected.as_bytes()
    assert shape(parsing.parse(data).message) == shape(expected)


def test_one_part_messages_are_parsed_by_their_header_section() -> None:
    text = b"From: a@clinic.example.org\r\nSubject: note\r\n\r\n" + b"line\r\n" * 500
    pdf = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + RUN
    for data in (text, pdf, b"Subject: empty body\r\n\r\n"):
        alone = parsing._parse_head_alone(data)
        assert alone is not None
        assert shape(alone) == shape(line_by_line(data))


@pytest.mark.parametrize(
    "data",
    [
        CASES["attachment"],
        CASES["unclosed multipart"],
        b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n",
        b"Subject: a\r\nno colon here\r\nX: b\r\n\r\nbody\r\n",  # the section ends early
        b"Subject: a\n\nbody\r\n\r\nmore\r\n",  # bare line ends: the first empty line
    ],
)
def test_messages_with_parts_or_an_earlier_end_of_headers_are_parsed_whole(data: bytes) -> None:
    assert parsing._parse_head_alone(data) is None
    assert shape(parsing.parse(data).message) == shape(line_by_line(data))
