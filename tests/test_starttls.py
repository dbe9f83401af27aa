"""STARTTLS on the submission listener, tried with a raw socket and Python's ssl.

What a client sends in clear after STARTTLS must not survive the handshake
(RFC 3207 §4.2; the command-injection flaw of CVE-2011-0411), the session
starts over once TLS is on, and a second STARTTLS is refused.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Phigate, insecure_context


class Connection:
    """One SMTP connection: plain first, then TLS after `starttls`."""

    def __init__(self, port: int) -> None:
        self.sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.replies = self.sock.makefile("rb")

    def reply(self) -> bytes:
        """The last line of one reply."""
        while True:
            line = self.replies.readline()
            if line[3:4] != b"-":
                return line

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, line: str) -> bytes:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def handshake(self) -> None:
        self.replies.close()
        self.sock = insecure_context().wrap_socket(self.sock, server_hostname="localhost")
        self.replies = self.sock.makefile("rb")

    def close(self) -> None:
        self.replies.close()
        self.sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phigate]:
    with Phigate(Path(tmp_path_factory.mktemp("starttls"))) as gw:
        yield gw


@pytest.fixture
def conn(server: Phigate) -> Iterator[Connection]:
    connection = Connection(server.port)
    assert connection.reply().startswith(b"220 ")
    assert connection.command("EHLO client.example.org").startswith(b"250 ")
    yield connection
    connection.close()


def test_commands_sent_in_clear_with_starttls_are_discarded(conn: Connection) -> None:
    conn.send(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
    assert conn.reply().startswith(b"220 ")
    conn.handshake()
    # The session starts over: no greeting carried over, no injected MAIL.
    assert conn.command("MAIL FROM:<a@example.org>").startswith(b"503")
    assert conn.command("EHLO client.example.org").startswith(b"250 ")
    assert conn.command("RCPT TO:<b@example.org>").startswith(b"503")


def test_a_second_starttls_is_refused_and_the_session_goes_on(conn: Connection) -> None:
    assert conn.command("STARTTLS").startswith(b"220 ")
    conn.handshake()
    assert isinstance(conn.sock, ssl.SSLSocket) and conn.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert conn.command("EHLO client.example.org").startswith(b"250 ")
    assert conn.command("STARTTLS") == b"503 5.5.1 TLS already active\r\n"
    assert conn.command("NOOP").startswith(b"250 ")


def test_a_failed_handshake_ends_only_that_session(server: Phigate, conn: Connection) -> None:
    assert conn.command("STARTTLS").startswith(b"220 ")
    conn.send(b"this is not a TLS ClientHello\r\n" * 4)
    assert conn.replies.read() == b""  # the server closed the connection
    other = Connection(server.port)
    assert other.reply().startswith(b"220 ")
    assert other.command("EHLO client.example.org").startswith(b"250 ")
    assert other.command("STARTTLS").startswith(b"220 ")
    other.handshake()
    assert other.command("EHLO client.example.org").startswith(b"250 ")
    other.close()
