"""Command lines end at CRLF and nowhere else (RFC 5321 section 2.3.8).

aiosmtpd reads commands (and AUTH answers) up to LF, so
`MAIL FROM:<a@x>\\nRCPT TO:<b@y>\\r\\n` would run as two commands: one client
could smuggle a command past a proxy or filter that reads lines correctly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class BareLineEnding(Exception):
    """A command line held a CR or LF that is not part of its closing CRLF."""


class CrlfCommandReader(asyncio.StreamReader):
    """A stream reader whose lines (readline, readuntil's default) end at CRLF only."""

    # A plain function handing back the coroutine: DATA reads every line of a
    # message through here, and an extra coroutine frame per line shows.
    def readuntil(self, separator: Any = b"\n") -> Coroutine[Any, Any, bytes]:
        if separator != b"\n":  # DATA asks for CRLF itself and checks bare endings later
            return super().readuntil(separator)
        return self._command_line()

    def holds_line(self) -> bool:
        """Whether a whole command line is already here: the client pipelined it."""
        buffer: bytearray = self._buffer  # type: ignore[attr-defined]
        return b"\r\n" in buffer

    async def _command_line(self) -> bytes:
        line = await super().readuntil(b"\r\n")
        if b"\r" in line[:-2] or b"\n" in line[:-2]:
            raise BareLineEnding
        return line
