"""Whether base64 in a message is what it seems: one pass of Hyperscan for an attachment.

Parsing stands a token in for each long run of base64 lines (gateway.mail.message)
and must know where the run holds something the parser would not take as it takes
the token; inspection decodes base64 with its white space and must know whether it
is well formed. `bytes.translate`, which answered both, looks each octet up in a table:
0.9 ms for 2 MB, where Hyperscan's character-class matcher takes 0.13. Where
Hyperscan is not installed, a regular expression and translation answer.
"""

from __future__ import annotations

import re
from typing import Final

from gateway.mail import octet_search

ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
WHITE_SPACE: Final = b" \t\r\n"  # what decoding skips in a well-formed encoding
_LINES: Final = re.compile(rb"(?:[A-Za-z0-9+/=]+\r\n)*")

if octet_search.available:
    _flaws: octet_search.OctetSearch | None = octet_search.OctetSearch(
        (
            rb"[^A-Za-z0-9+/=\r\n]",  # outside the alphabet and the line ends
            rb"\n[\r\n]|\r\r|\A[\r\n]",  # an empty line
        )
    )
    _not_plainly_well_formed: octet_search.OctetSearch | None = octet_search.OctetSearch(
        (
            rb"[^A-Za-z0-9+/= \t\r\n]",  # outside the alphabet and white space
            rb"=[ \t\r\n]*[A-Za-z0-9+/]",  # padding before the end
        )
    )
else:  # pragma: no cover - depends on the platform
    _flaws = _not_plainly_well_formed = None


def matched_first_flaw(data: bytes, start: int, end: int) -> int:
    """`first_flaw` by a regular expression (without Hyperscan), more strictly: the
    first line that is not base64 characters and a CRLF."""
    lines = _LINES.match(data, start, end)
    return -1 if lines is None or lines.end() == end else lines.end()


def scanned_first_flaw(data: bytes, start: int, end: int) -> int:
    """`first_flaw` by Hyperscan, over a view of the data (no copy): the last octet
    of the first flaw found, which is in the flaw's line."""
    assert _flaws is not None
    found = _flaws.first_end(memoryview(data)[start:end])
    return found if found < 0 else start + found - 1


def first_flaw(data: bytes, start: int, end: int) -> int:
    """Where data[start:end], lines from a line's start to a CRLF, first holds what
    a parser could take otherwise than one line of base64: an octet outside base64's
    alphabet and the line ends, or an empty line (it ends a block of header fields
    in a delivery status). -1 when there is none. The offset is in the first line
    with a flaw, or before it, but not before the first line that is other than
    base64 characters and a CRLF. (A CR or LF alone only splits a line of base64
    characters into shorter ones.)"""
    if _flaws is not None:
        return scanned_first_flaw(data, start, end)
    return matched_first_flaw(data, start, end)  # pragma: no cover - depends on the platform


def plainly_well_formed(encoded: bytes) -> bool:
    """Whether base64 holds only its alphabet and white space, with no "=" before
    more of its alphabet: well formed but for its length, which the decoder checks.
    False where Hyperscan is not installed: the caller then looks closer."""
    return _not_plainly_well_formed is not None and not _not_plainly_well_formed.occurs_in(encoded)
