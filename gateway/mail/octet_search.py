"""One pass of Hyperscan over a message's octets, for the questions asked of every
large message (its line ends, its base64).

The bytes methods answer such questions at about a nanosecond per octet, or
slower where an octet is looked up in a table (`bytes.translate`); Hyperscan's
literal and character-class matchers are several times faster. Hyperscan has
wheels for x86_64 only: `available` says whether it is here, and each caller
keeps a bytes-method answer for where it is not.
"""

from __future__ import annotations

import threading
from typing import Any

hyperscan: Any
try:
    import hyperscan
except ImportError:  # pragma: no cover - depends on the platform
    hyperscan = None

available = hyperscan is not None


class OctetSearch:
    """A Hyperscan database of patterns whose one question is: where does the first
    match end, if any does?"""

    def __init__(self, patterns: tuple[bytes, ...]) -> None:
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._db.compile(
            expressions=list(patterns),
            ids=list(range(len(patterns))),
            elements=len(patterns),
            flags=[hyperscan.HS_FLAG_SINGLEMATCH] * len(patterns),  # one report is enough
        )
        self._local = threading.local()  # a scratch space per thread (DKIM signs off the loop)

    def first_end(self, data: bytes | memoryview) -> int:
        """Where the first match of any pattern ends, or -1. A memoryview is scanned
        where it lies, without a copy."""
        if not len(data):
            return -1
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._db)
        found: list[int] = []
        self._db.scan(data, match_event_handler=_first, context=found, scratch=scratch)
        return min(found, default=-1)

    def occurs_in(self, data: bytes | memoryview) -> bool:
        return self.first_end(data) >= 0


def _first(index: int, start: int, end: int, flags: int, found: list[int]) -> None:
    found.append(end)  # once per pattern at most (HS_FLAG_SINGLEMATCH): its first match
