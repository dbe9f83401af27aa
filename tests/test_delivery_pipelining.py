"""The delivery client pipelines MAIL, RCPT and DATA (RFC 2920) only where offered,
and maps each recipient's reply to its own result either way.

The server is a real one on loopback, strict about the difference: offering
PIPELINING, it answers MAIL and RCPT only once DATA has arrived (a client
waiting for each reply would stall); not offering it, it records any command
that arrives before the previous one was answered.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
from certs import make_certs, server_context

from gateway.delivery import session
from gateway.delivery.client import RecipientResult, SmtpSender, TlsPolicy

REFUSED = "nobody@partner.test"
# Lines that start with "." must arrive as they were (dot-stuffing on the wire).
CONTENT = b"From: a@clinic.example.org\r\nSubject: s\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n"


@dataclass
class Server:
    """What the scripted server saw, across its connections."""

    pipelining: bool
    tls: ssl.SSLContext | None = None
    sessions: int = 0
    messages: list[tuple[list[str], bytes]] = field(default_factory=list)
    commands_in_one_read: list[int] = field(default_factory=list)  # per read with commands
    out_of_turn: list[str] = field(default_factory=list)


class ScriptedSmtp(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = b""
        self.held: list[bytes] = []  # replies to MAIL and RCPT, sent with DATA's
        self.recipients: list[str] = []
        self.in_data = False
        self.transport: asyncio.Transport | None = None
        self.upgrading = False  # commands wait until STARTTLS gives the TLS transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.sessions += 1
        self.transport.write(b"220 scripted ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.upgrading:
            return
        commands = 0
        while not self.in_data and b"\r\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            commands += 1
            if not self.server.pipelining and self.buffer and not self.in_data:
                self.server.out_of_turn.append(line.decode())
            self.command(line.decode())
        if commands:
            self.server.commands_in_one_read.append(commands)
        if self.in_data and b"\r\n.\r\n" in b"\r\n" + self.buffer:
            content, self.buffer = (b"\r\n" + self.buffer).split(b"\r\n.\r\n", 1)
            unstuffed = content[2:].replace(b"\r\n..", b"\r\n.")
            unstuffed = unstuffed[1:] if unstuffed.startswith(b"..") else unstuffed
            self.server.messages.append((self.recipients, unstuffed + b"\r\n"))
            self.in_data, self.recipients = False, []
            self.reply(b"250 2.0.0 queued")

    def reply(self, text: bytes, hold: bool = False) -> None:
        assert self.transport is not None
        if hold and self.server.pipelining:
            self.held.append(text + b"\r\n")
            return
        self.transport.write(b"".join(self.held) + text + b"\r\n")
        self.held = []

    def command(self, line: str) -> None:
        verb = line[:4].upper()
        if verb == "EHLO":
            offers = ["250-scripted"] + (["250-PIPELINING"] if self.server.pipelining else [])
            offers.append("250 STARTTLS" if self.server.tls else "250 8BITMIME")
            self.reply("\r\n".join(offers).encode())
        elif verb == "STAR" and self.server.tls is not None:
            self.reply(b"220 2.0.0 go ahead")
            self.upgrading = True
            asyncio.get_running_loop().create_task(self.start_tls(self.server.tls))
        elif verb == "MAIL":
            self.recipients = []
            self.reply(b"250 2.1.0 ok", hold=True)
        elif verb == "RCPT":
            address = line.split(":", 1)[1].strip("<> ")
            if address == REFUSED:
                self.reply(b"550 5.1.1 no such user", hold=True)
            else:
                self.recipients.append(address)
                self.reply(b"250 2.1.5 ok", hold=True)
        elif verb == "DATA":
            if self.recipients:
                self.in_data = True
                self.reply(b"354 go ahead")
            else:
                self.reply(b"554 5.5.1 no valid recipients")
        elif verb == "RSET":
            self.recipients = []
            self.reply(b"250 2.0.0 ok")
        else:
            self.reply(b"502 5.5.2 not implemented")

    async def start_tls(self, context: ssl.SSLContext) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        tls = await loop.start_tls(self.transport, self, context, server_side=True)
        self.transport, self.upgrading = cast(asyncio.Transport, tls), False
        self.data_received(b"")


async def deliver(
    server: Server,
    messages: list[list[str]],
    policy: TlsPolicy,
    ca_file: str | None = None,
) -> list[list[RecipientResult]]:
    """Send CONTENT once per recipient list, one after the other, through one client."""
    loop = asyncio.get_running_loop()
    listening = await loop.create_server(lambda: ScriptedSmtp(server), "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    sender = SmtpSender("phigate.test", ca_file, connect_timeout=5, command_timeout=3)
    try:
        return [
            await sender.send(
                "127.0.0.1", port, "127.0.0.1", "a@clinic.example.org", rcpts, CONTENT, policy
            )
            for rcpts in messages
        ]
    finally:
        sender.close()
        listening.close()


def codes(results: list[RecipientResult]) -> list[tuple[str, int | None, str]]:
    return [(r.recipient, r.code, r.status) for r in results]


MIXED = ["one@partner.test", REFUSED, "two@partner.test"]
MIXED_CODES = [
    ("one@partner.test", 250, "2.0.0"),
    (REFUSED, 550, "5.1.1"),
    ("two@partner.test", 250, "2.0.0"),
]


@pytest.mark.parametrize("pipelining", [True, False])
def test_each_recipient_gets_its_own_reply(pipelining: bool) -> None:
    server = Server(pipelining)
    sent = asyncio.run(deliver(server, [MIXED, ["three@partner.test"]], TlsPolicy("none")))
    assert codes(sent[0]) == MIXED_CODES
    assert codes(sent[1]) == [("three@partner.test", 250, "2.0.0")]
    assert server.messages == [
        (["one@partner.test", "two@partner.test"], CONTENT),
        (["three@partner.test"], CONTENT),
    ]
    assert server.sessions == 1  # the second message reused the connection
    assert server.out_of_turn == []
    if pipelining:  # MAIL, three RCPT and DATA in one write
        assert 5 in server.commands_in_one_read
    else:
        assert set(server.commands_in_one_read) == {1}


@pytest.mark.parametrize("pipelining", [True, False])
def test_every_recipient_refused_sends_nothing_and_keeps_the_connection(
    pipelining: bool,
) -> None:
    server = Server(pipelining)
    sent = asyncio.run(deliver(server, [[REFUSED], ["one@partner.test"]], TlsPolicy("none")))
    assert codes(sent[0]) == [(REFUSED, 550, "5.1.1")]
    assert codes(sent[1]) == [("one@partner.test", 250, "2.0.0")]
    assert server.messages == [(["one@partner.test"], CONTENT)]
    assert server.sessions == 1
    assert server.out_of_turn == []


def test_pipelines_over_verified_starttls(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    server = Server(True, tls=server_context(certs["good"], certs["good_key"]))
    sent = asyncio.run(
        deliver(server, [MIXED, MIXED], TlsPolicy("verify"), ca_file=str(certs["ca"]))
    )
    assert [codes(s) for s in sent] == [MIXED_CODES, MIXED_CODES]
    assert all(r.tls is not None and r.tls.verified == "pkix" for r in sent[0])
    assert len(server.messages) == 2 and server.sessions == 1  # one TLS handshake
    assert 5 in server.commands_in_one_read


def test_an_unverifiable_server_gets_no_transaction(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    server = Server(True, tls=server_context(certs["impostor"], certs["impostor_key"]))
    with pytest.raises(Exception, match="certificate-not-trusted"):
        asyncio.run(deliver(server, [MIXED], TlsPolicy("verify"), ca_file=str(certs["ca"])))
    assert server.messages == [] and 5 not in server.commands_in_one_read


@pytest.mark.parametrize(
    "address",
    ["a\r\n@b.org", "a@b.org>\r\nRCPT TO:<c@d.org", "a\x00@b.org", "a\u2028@b.org", "<a@b.org"],
)
def test_an_address_that_could_end_the_command_line_is_never_sent(address: str) -> None:
    with pytest.raises(ValueError, match="cannot carry"):
        session._path(address)
    assert session._path("a.b+c@clinic.example.org") == b"<a.b+c@clinic.example.org>"
