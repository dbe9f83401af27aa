"""A message parsed once for every reader: its header fields, parts and Message-ID.

The email package's feed parser looks at every line in Python, about a
microsecond each: a 2 MB attachment in base64 (28,000 lines) took 25 ms.
Most of those lines cannot change the structure it finds. A line of base64
characters alone is not a header field (no colon), not a continuation (no
leading white space), not a boundary (no leading "--") and not empty. So
long runs of such lines are each given to the parser as one line of a random
token, which it treats exactly as it would have treated any of them, and
the runs are put back in place of their tokens afterwards. If a token is not
found exactly once where it was expected, the message is parsed line by line
instead. The result is the same Message either way (tests/test_message_parse.py).

A message of one part (most mail from clinical systems: text, or one file)
needs even less: the parser takes every line after the header section of a
part that is neither multipart nor a message as its payload, unread. So the
header section alone is parsed, with a token line for the body, and the
body's text put in the token's place.
"""

from __future__ import annotations

import email.policy
import re
import secrets
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesFeedParser

from gateway.mail.base64_octets import first_flaw

# The parser splits what it is fed into lines at once: fed whole, a 10 MB message
# peaks at about eight times its size; fed in pieces of this size, under three.
_PIECE = 256 * 1024
# Where a run of base64 lines begins: 32 of them (2 KB and more of an attachment)
# go to the parser as one line; shorter runs are not worth it.
_RUN_START = re.compile(rb"\n((?:[A-Za-z0-9+/=]+\r\n){32})")
_MORE_LINES = re.compile(rb"(?:[A-Za-z0-9+/=]+\r\n)*")
_BLOCK_LINES = 1024
# A header section without these words has no part whose type is multipart/* or
# message/* (the parser reads the type from the field as written, lower-cased).
_PARTS_LIKELY = re.compile(rb"multipart|message/", re.IGNORECASE)
_TOKEN_DIGITS = 8
# A part's payload as parsed: get_payload() would give text with 8-bit octets
# decoded, which set back would change the part.
_PAYLOAD = "_payload"


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None
    message: Message


def parse(content: bytes) -> ParsedMessage:
    message = (
        _parse_head_alone(content) or _parse_with_runs_as_tokens(content) or _parse_lines(content)
    )
    raw_id = message.get("Message-ID")
    message_id = " ".join(str(raw_id).split())[:998] if raw_id else None
    return ParsedMessage(message_id, message)


def payload_as_parsed(part: Message) -> str:
    """A leaf part's payload as the parser left it, 8-bit octets as surrogates ("" for a
    multipart). get_payload() first encodes the whole payload to look for surrogates: a
    copy of each large attachment, where base64 needs none (it is ASCII or malformed)."""
    payload = getattr(part, _PAYLOAD)
    return payload if isinstance(payload, str) else ""


def _parse_lines(content: bytes) -> Message:
    parser = BytesFeedParser(policy=email.policy.compat32)
    for start in range(0, len(content), _PIECE):
        parser.feed(content[start : start + _PIECE])
    return parser.close()


def _parse_head_alone(content: bytes) -> Message | None:
    """A message of one part parsed without looking at its body's lines; None when
    its header section does not end at the first empty line, or it has parts."""
    end = content.find(b"\r\n\r\n") + 4
    if end < 4 or _PARTS_LIKELY.search(content, 0, end):
        return None  # no header section, or a part the parser would read further
    token = "T" + secrets.token_hex(16)
    message = _parse_lines(content[:end] + token.encode("ascii"))
    if getattr(message, _PAYLOAD) != token:
        return None  # the header section ended before the first empty line
    # As the parser decodes what it is fed: octet for octet, 8-bit ones as surrogates
    # (from a view: a large body is not copied first).
    setattr(message, _PAYLOAD, str(memoryview(content)[end:], "ascii", "surrogateescape"))
    return message


def _runs(content: bytes) -> list[tuple[int, int]]:
    """Where the runs of 32 or more lines of base64 characters alone are, from the
    first line to the last line's CRLF."""
    spans = []
    position = 0
    while (start := _RUN_START.search(content, position)) is not None:
        width = content.index(b"\r\n", start.start(1)) - start.start(1)
        end = _lines_of_width(content, start.end(1), width)
        more = _MORE_LINES.match(content, end)  # the rest, whatever their widths
        end = more.end() if more else end
        spans.append((start.start(1), end))
        position = end
    return spans


def _lines_of_width(content: bytes, position: int, width: int) -> int:
    """Where the lines of `width` base64 characters and a CRLF that begin at
    `position` end, or where a flaw is found (gateway.mail.base64_octets.first_flaw):
    at the start of the lines' stride it is in; the caller takes the lines of any
    width that follow. A regular expression looks at each octet in turn; here slices
    check the line ends of a block at a time (a block the lines end in, halved until
    one line is left), then one search looks for a flaw between them."""
    stride = width + 2
    end = position
    lines = _BLOCK_LINES
    while lines := min(lines, (len(content) - end) // stride):
        block = content[end : end + lines * stride]
        if block[width::stride] == b"\r" * lines and block[width + 1 :: stride] == b"\n" * lines:
            end += lines * stride
        elif lines == 1:
            break
        else:
            lines //= 2
    flaw = first_flaw(content, position, end)
    return end if flaw < 0 else flaw - (flaw - position) % stride


def _parse_with_runs_as_tokens(content: bytes) -> Message | None:
    """The message parsed with each long run of base64 lines stood in for by a token
    line; None when there is no such run, or a token did not come back once."""
    spans = _runs(content)
    if not spans:
        return None
    # Letters and digits only: to the parser a token line is one more base64 line.
    prefix = "T" + secrets.token_hex(16)
    pieces: list[bytes] = []
    runs: dict[str, str] = {}
    end = 0
    for number, (start, stop) in enumerate(spans):
        token = f"{prefix}{number:0{_TOKEN_DIGITS}d}"
        # Without the run's last CRLF: the token line keeps its own, which the parser
        # drops where it would have dropped the run's (before a boundary).
        runs[token] = content[start : stop - 2].decode("ascii")
        pieces += (content[end:start], token.encode("ascii"), b"\r\n")
        end = stop
    pieces.append(content[end:])
    message = _parse_lines(b"".join(pieces))
    del pieces
    for part in message.walk():
        for place in (_PAYLOAD, "preamble", "epilogue"):
            text = getattr(part, place)
            if isinstance(text, str) and prefix in text:
                restored = _with_runs(text, prefix, runs)
                if restored is None:
                    return None
                setattr(part, place, restored)
    return None if runs else message


def _with_runs(text: str, prefix: str, runs: dict[str, str]) -> str | None:
    """`text` with each token in it (`prefix` and its number) back as the run it stood
    for, taken out of `runs`; None if a token is not there (or came back twice)."""
    first, *rest = text.split(prefix)
    pieces = [first]
    for piece in rest:
        run = runs.pop(prefix + piece[:_TOKEN_DIGITS], None)
        if run is None:
            return None
        pieces += (run, piece[_TOKEN_DIGITS:])
    return "".join(pieces)
