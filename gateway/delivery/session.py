"""Mail transactions on an SMTP connection that is already greeted (and secured).

aiosmtplib opens the connection, says EHLO and runs STARTTLS (see client.py);
it waits for each reply before the next command and has no PIPELINING
(RFC 2920): its protocol drops replies that arrive before they are asked for.
So once a connection is ready its transport is handed to `SmtpSession`, which
sends MAIL, every RCPT and DATA in one write when the server offers PIPELINING
(one command at a time when it does not) and reads the replies in order. The
TLS session, and how its peer was verified, stay as they were.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple, cast

from gateway.mail.line_ends import has_dot_line

# A reply longer than this is not an SMTP server's (RFC 5321 §4.5.3.1.5: 512 per line).
_MAX_REPLY_BYTES = 64 * 1024
_END_OF_DATA = b".\r\n"


class Reply(NamedTuple):
    code: int
    text: str  # the reply's lines without their codes, joined by "\n"


class SessionError(Exception):
    """The connection failed during a transaction: closed, timed out, or not speaking SMTP."""


@dataclass(frozen=True)
class Transaction:
    """The replies to one mail transaction, in the order of the commands."""

    mail: Reply
    recipients: tuple[Reply, ...]  # one per RCPT sent; empty when MAIL was refused
    data: Reply | None  # None when DATA was not sent (MAIL or every RCPT refused)
    final: Reply | None  # to the content; None when it was not sent


def accepted(reply: Reply) -> bool:
    """A positive reply to RCPT (251: the server forwards)."""
    return reply.code in (250, 251)


def _path(address: str) -> bytes:
    """`<address>` for MAIL or RCPT; an address that could end the command line is refused."""
    if not address.isprintable() or "<" in address or ">" in address:
        raise ValueError("an envelope address holds characters an SMTP command cannot carry")
    return b"<" + address.encode("ascii") + b">"


def _dot_stuffed(content: bytes) -> bytes:
    """Content with each line that starts with "." doubled (RFC 5321 §4.5.2); CRLF lines."""
    if has_dot_line(content):
        content = content.replace(b"\r\n.", b"\r\n..")
    return b"." + content if content.startswith(b".") else content


class SmtpSession(asyncio.Protocol):
    """One SMTP connection between transactions, replies read in the order sent."""

    def __init__(self, transport: asyncio.Transport, pipelining: bool) -> None:
        self.transport = transport
        self.pipelining = pipelining
        self._buffer = bytearray()
        self._replies: deque[Reply] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._failure: str | None = None  # why no more replies will come
        # Set once content was written: from then on the server may have taken it.
        self.content_sent = False

    @classmethod
    def take_over(cls, transport: asyncio.BaseTransport, pipelining: bool) -> SmtpSession:
        """Read a connection's replies from now on (its current protocol has none pending)."""
        session = cls(cast(asyncio.Transport, transport), pipelining)
        transport.set_protocol(session)
        return session

    @property
    def is_open(self) -> bool:
        return self._failure is None and not self.transport.is_closing()

    def close(self) -> None:
        self._fail("closed")
        self.transport.close()

    # -- asyncio.Protocol --------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            reply = self._parse()
            if reply is None:
                break
            self._replies.append(reply)
        if len(buffer) > _MAX_REPLY_BYTES:
            self._fail("reply too long")
            self.transport.close()
        elif self._replies and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def eof_received(self) -> bool:
        self._fail("closed by the server")
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail("connection lost")

    def _fail(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _parse(self) -> Reply | None:
        """The first complete reply in the buffer, removed from it."""
        buffer = self._buffer
        lines: list[str] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                return None
            line = bytes(buffer[start:end]).rstrip(b"\r")
            start = end + 1
            if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in (b"", b" ", b"-"):
                self._fail("not an SMTP reply")
                self.transport.close()
                return None
            lines.append(line[4:].strip().decode("utf-8", "replace"))
            if line[3:4] != b"-":
                del buffer[:start]
                return Reply(int(line[:3]), "\n".join(lines))

    # -- transactions ------------------------------------------------------------

    async def _replies_to(self, data: bytes, count: int, timeout: float) -> list[Reply]:
        """Send `data` (one or more commands) and read `count` replies."""
        if self._failure is not None:
            raise SessionError(self._failure)
        self.transport.write(data)
        replies: list[Reply] = []
        try:
            async with asyncio.timeout(timeout):
                while len(replies) < count:
                    if self._replies:
                        replies.append(self._replies.popleft())
                        continue
                    if self._failure is not None:
                        raise SessionError(self._failure)
                    self._waiter = asyncio.get_running_loop().create_future()
                    await self._waiter
        except TimeoutError:
            self.close()
            raise SessionError("timed out waiting for a reply") from None
        finally:
            self._waiter = None
        return replies

    async def _one(self, command: bytes, timeout: float) -> Reply:
        return (await self._replies_to(command, 1, timeout))[0]

    async def transaction(
        self, sender: str, recipients: list[str], content: bytes, timeout: float
    ) -> Transaction:
        """MAIL, RCPT for each recipient, DATA and the content (CRLF lines); each
        group of replies must come within `timeout` seconds. Leaves the connection
        ready for the next transaction unless MAIL was refused. Raises
        SessionError when the connection fails, ValueError for an address SMTP
        cannot carry."""
        self.content_sent = False
        mail = b"MAIL FROM:" + _path(sender) + b"\r\n"
        rcpts = [b"RCPT TO:" + _path(r) + b"\r\n" for r in recipients]
        if self.pipelining:
            replies = await self._replies_to(
                b"".join([mail, *rcpts, b"DATA\r\n"]), len(rcpts) + 2, timeout
            )
            mail_reply, data_reply = replies[0], replies[-1]
            rcpt_replies = tuple(replies[1:-1])
            if mail_reply.code != 250:
                return Transaction(mail_reply, (), None, None)
        else:
            mail_reply = await self._one(mail, timeout)
            if mail_reply.code != 250:
                return Transaction(mail_reply, (), None, None)
            rcpt_replies = tuple([await self._one(rcpt, timeout) for rcpt in rcpts])
            if not any(accepted(r) for r in rcpt_replies):
                await self._one(b"RSET\r\n", timeout)
                return Transaction(mail_reply, rcpt_replies, None, None)
            data_reply = await self._one(b"DATA\r\n", timeout)
        if data_reply.code != 354:
            await self._one(b"RSET\r\n", timeout)  # MAIL opened a transaction: close it
            return Transaction(mail_reply, rcpt_replies, data_reply, None)
        if not any(accepted(r) for r in rcpt_replies):
            # RFC 2920 §3.1: DATA accepted without a recipient; an empty message ends it.
            await self._one(_END_OF_DATA, timeout)
            return Transaction(mail_reply, rcpt_replies, data_reply, None)
        self.content_sent = True
        ending = _END_OF_DATA if content.endswith(b"\r\n") or not content else b"\r\n.\r\n"
        self.transport.writelines([_dot_stuffed(content), ending])
        final = await self._replies_to(b"", 1, timeout)
        return Transaction(mail_reply, rcpt_replies, data_reply, final[0])
