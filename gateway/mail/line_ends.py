"""Questions about a message's line ends, each answered by one pass of Hyperscan.

Every accepted message is checked for bare CR and LF (a way to smuggle a second
message past a receiver), at DATA and again before DKIM signing, and for lines
that begin with "." when the dot-stuffing is undone or done. Searching for a
two- or three-octet sequence with the bytes methods runs at about a nanosecond
per octet; Hyperscan's literal matchers are several times faster (on a 2 MB
message 0.6 ms instead of 3.1 for the line ends, 0.2 instead of 1.5 for the dots;
on a 50 KB one 15 us instead of 70, and 5 instead of 32). A scan's call costs
about a microsecond, so below LARGE octets, where that is more than the search,
the bytes methods answer. Where Hyperscan is not installed (it has wheels for
x86_64 only) the bytes methods answer at every size.
"""

from __future__ import annotations

from typing import Final

from gateway.mail import octet_search

# Where a scan overtakes the bytes methods: about 1 KB for the line ends, 1.5 KB for
# the dots (the best of five timings of each, plain text messages of 0.5 to 16 KB).
LARGE: Final = 2 * 1024
# A CR not followed by LF, an LF not preceded by CR, at the ends of the data too.
_BARE: Final = (rb"\r[^\n]", rb"[^\r]\n", rb"\A\n", rb"\r\z")
_DOT_LINE: Final = (rb"\r\n\.",)


def counted_crlf_only(data: bytes) -> bool:
    """`crlf_only` by counting (without Hyperscan)."""
    newlines = data.count(b"\n")
    return newlines == data.count(b"\r") == data.count(b"\r\n")


def searched_dot_line(data: bytes) -> bool:
    """`has_dot_line` by the bytes method (without Hyperscan)."""
    return b"\r\n." in data


if octet_search.available:
    _bare = octet_search.OctetSearch(_BARE)
    _dot_line = octet_search.OctetSearch(_DOT_LINE)

    def scanned_crlf_only(data: bytes) -> bool:
        """`crlf_only` by Hyperscan."""
        return not _bare.occurs_in(data)

    def scanned_dot_line(data: bytes) -> bool:
        """`has_dot_line` by Hyperscan."""
        return _dot_line.occurs_in(data)

    def crlf_only(data: bytes) -> bool:
        """Whether every CR and every LF in `data` is part of a CRLF."""
        return scanned_crlf_only(data) if len(data) >= LARGE else counted_crlf_only(data)

    def has_dot_line(data: bytes) -> bool:
        """Whether a line after the first begins with "." (CRLF "." occurs)."""
        return scanned_dot_line(data) if len(data) >= LARGE else searched_dot_line(data)

else:  # pragma: no cover - depends on the platform
    crlf_only = counted_crlf_only
    has_dot_line = searched_dot_line
