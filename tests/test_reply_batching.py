"""Replies to a pipelined command group go out together (RFC 2920 §3.2).

A client that pipelines MAIL, RCPT and DATA gets their replies in one TLS record
and one TCP segment, not one each: counted on the client's real socket with the
kernel's own tally of the segments that carried data to it (TCP_INFO). The
replies stay in order, each with its own code, and a refusal in the middle of
a group still reaches the client in its place.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

from harness import Phigate, message, tls_client

PRINCIPAL = "ehr"
DOMAIN = "clinic.example.org"
SENDER = "ehr@clinic.example.org"
# tcp_info's tcpi_data_segs_in (Linux 4.6 and later), from <linux/tcp.h>.
_DATA_SEGS_IN = struct.Struct("<I")
_DATA_SEGS_IN_OFFSET = 152


def data_segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _DATA_SEGS_IN_OFFSET + 4)
    return int(_DATA_SEGS_IN.unpack_from(info, _DATA_SEGS_IN_OFFSET)[0])


def pipelined(tmp_path: Path, commands: list[str]) -> tuple[list[tuple[int, bytes]], int]:
    """The replies to `commands` sent in one write after AUTH, and how many TCP segments
    carried them; then the message is sent and the session ended."""
    gw = Phigate(tmp_path)
    secret = gw.add_principal(PRINCIPAL, DOMAIN)
    with gw, tls_client(gw.port) as client:
        client.login(PRINCIPAL, secret)
        assert client.sock is not None
        before = data_segments_in(client.sock)
        client.sock.sendall("".join(f"{c}\r\n" for c in commands).encode())
        replies = [client.getreply() for _ in commands]
        time.sleep(0.2)  # anything the server wrote after the last reply has arrived
        segments = data_segments_in(client.sock) - before
        if replies[-1][0] == 354:
            content = message(SENDER, "dr@partner.test", "pipelined", "hello")
            client.send(content.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
            assert client.getreply()[0] == 250
    return replies, segments


def test_the_replies_to_a_pipelined_group_share_one_segment(tmp_path: Path) -> None:
    commands = [
        f"MAIL FROM:<{SENDER}>",
        "RCPT TO:<dr@partner.test>",
        "RCPT TO:<nurse@partner.test>",
        "DATA",
    ]
    replies, segments = pipelined(tmp_path, commands)
    assert [code for code, _ in replies] == [250, 250, 250, 354]
    assert segments == 1


def test_a_refusal_in_a_group_keeps_its_place(tmp_path: Path) -> None:
    commands = [
        f"MAIL FROM:<{SENDER}>",
        "RCPT TO:<dr@partner.test>",
        "RCPT TO:<not an address>",
        "RCPT TO:<nurse@partner.test>",
        "DATA",
    ]
    replies, segments = pipelined(tmp_path, commands)
    assert [code for code, _ in replies] == [250, 250, 553, 250, 354]
    # The refusal goes out with what was held before it; the rest follow together.
    assert segments == 2
