"""The PROXY protocol header (v1, v2): parsing, taking it off a socket byte-exact, whom to trust."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from gateway.config import ProxyProtocolConfig, RelayNetwork, relay_network_for
from gateway.smtp.proxied import read_header
from gateway.smtp.proxy_protocol import (
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    header_length,
    parse_header,
)


def v2(
    command: int = 1,
    family: int = 1,
    transport: int = 1,
    body: bytes | None = None,
    tlvs: bytes = b"",
    version: int = 2,
) -> bytes:
    """A v2 header; by default PROXY TCP4 from 192.0.2.7:40000 to 198.51.100.1:25."""
    if body is None:
        body = ipaddress.IPv4Address("192.0.2.7").packed
        body += ipaddress.IPv4Address("198.51.100.1").packed + struct.pack("!HH", 40000, 25)
    body += tlvs
    head = bytes([version << 4 | command, family << 4 | transport])
    return V2_SIGNATURE + head + struct.pack("!H", len(body)) + body


def parsed(header: bytes) -> ProxyHeader:
    """Parse as a reader would: the measured length must be the whole header."""
    assert header_length(header) == len(header)
    return parse_header(header)


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


# --- v1 ---------------------------------------------------------------------------


def test_v1_tcp4_names_the_client() -> None:
    assert parsed(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n") == ProxyHeader(1, "192.0.2.7")


def test_v1_tcp6_names_the_client_and_an_ipv4_mapped_one_as_ipv4() -> None:
    assert parsed(b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 25\r\n").client_ip == "2001:db8::7"
    mapped = b"PROXY TCP6 ::ffff:192.0.2.7 ::ffff:198.51.100.1 40000 25\r\n"
    assert parsed(mapped).client_ip == "192.0.2.7"


def test_v1_longest_header_is_107_bytes() -> None:
    full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    header = f"PROXY TCP6 {full} {full} 65535 65535\r\n".encode()
    assert len(header) == 104
    assert parsed(header).client_ip == full


def test_v1_unknown_is_the_balancer_itself_whatever_follows() -> None:
    assert parsed(b"PROXY UNKNOWN\r\n") == ProxyHeader(1, None)
    assert parsed(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n") == ProxyHeader(1, None)


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\n",  # a field missing
        b"PROXY TCP4 192.0.2.7  198.51.100.1 40000 25\r\n",  # two spaces
        b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25 x\r\n",  # a field too many
        b"PROXY UDP4 192.0.2.7 198.51.100.1 40000 25\r\n",
        b"PROXY TCP4 2001:db8::7 198.51.100.1 40000 25\r\n",  # IPv6 as TCP4
        b"PROXY TCP6 192.0.2.7 2001:db8::1 40000 25\r\n",  # IPv4 as TCP6
        b"PROXY TCP4 192.0.2.007 198.51.100.1 40000 25\r\n",  # leading zeros
        b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 040000 25\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 -1 25\r\n",
        b"PROXY TCP4 192.0.2.\xc3\xa9 198.51.100.1 1 25\r\n",  # not ASCII
        b"PROXY \r\n",
    ],
)
def test_malformed_v1_headers_are_refused(header: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parsed(header)


def test_a_v1_header_without_crlf_in_107_bytes_is_refused_at_once() -> None:
    assert header_length(b"PROXY TCP4 192.0.2.7") is None  # not yet ended
    with pytest.raises(ProxyHeaderError, match="longer than 107"):
        header_length(b"PROXY TCP4 " + b"1" * 96)
    with pytest.raises(ProxyHeaderError):  # a bare LF ends no header
        parse_header(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\n\r\n")


@pytest.mark.parametrize(
    "data", [b"EHLO client.example\r\n", b"PROXZ", b"\x16\x03\x01\x02\x00", b"\r\n\r\n\x01"]
)
def test_anything_that_cannot_begin_a_header_is_refused_from_its_first_bytes(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError, match="not a PROXY protocol header"):
        header_length(data)


# --- v2 ---------------------------------------------------------------------------


def test_v2_tcp4_names_the_client() -> None:
    assert parsed(v2()) == ProxyHeader(2, "192.0.2.7")


def test_v2_tcp6_names_the_client() -> None:
    body = ipaddress.IPv6Address("2001:db8::7").packed + ipaddress.IPv6Address("::1").packed
    header = v2(family=2, body=body + struct.pack("!HH", 1, 25))
    assert parsed(header).client_ip == "2001:db8::7"


def test_v2_with_extensions_names_the_client_and_ignores_them() -> None:
    tlvs = tlv(0x05, b"unique-id-1") + tlv(0x04, b"") + tlv(0x20, b"\x01\x00\x00\x00\x00")
    assert parsed(v2(tlvs=tlvs)).client_ip == "192.0.2.7"


def test_v2_local_unspec_and_unix_are_the_balancer_itself() -> None:
    assert parsed(v2(command=0, family=0, transport=0, body=b"")) == ProxyHeader(2, None)
    # LOCAL: whatever address block follows is ignored.
    assert parsed(v2(command=0)) == ProxyHeader(2, None)
    assert parsed(v2(family=0, transport=0, body=b"")) == ProxyHeader(2, None)
    unix = b"/run/client.sock".ljust(108, b"\0") + b"/run/phigate.sock".ljust(108, b"\0")
    assert parsed(v2(family=3, body=unix)) == ProxyHeader(2, None)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (v2(version=1), "another version"),
        (v2(command=2), "neither LOCAL nor PROXY"),
        (v2(family=4), "family unknown"),
        (v2(transport=2), "not a stream"),  # UDP
        (v2(body=b"\xc0\x00\x02\x07"), "truncated"),  # an address block too short
        (v2(family=2), "truncated"),  # 12 bytes of addresses for IPv6's 36
        (v2(family=3, body=b"/run/x.sock"), "truncated"),
        (v2(tlvs=b"\x05\x00"), "TLV"),  # a TLV cut in its length
        (v2(tlvs=tlv(0x05, b"abc")[:-1]), "TLV"),  # a TLV longer than what is left
    ],
)
def test_malformed_v2_headers_are_refused(header: bytes, reason: str) -> None:
    with pytest.raises(ProxyHeaderError, match=reason):
        parsed(header)


def test_v2_length_comes_from_its_fixed_part() -> None:
    header = v2(tlvs=tlv(0x05, b"x" * 300))
    assert header_length(header[:15]) is None
    assert header_length(header[:16]) == len(header)
    assert header_length(header + b"EHLO x\r\n") == len(header)
    with pytest.raises(ProxyHeaderError):  # a signature wrong in its last byte
        header_length(V2_SIGNATURE[:-1] + b"X" + header[12:])


def test_errors_never_carry_the_bytes_received() -> None:
    canary = b"PROXY TCP4 CANARY-SECRET 198.51.100.1 1 25\r\n"
    with pytest.raises(ProxyHeaderError) as raised:
        parsed(canary)
    assert "CANARY" not in str(raised.value)


# --- taking the header off a socket ------------------------------------------------

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """Run a coroutine on asyncio's loop or on uvloop's (the server's)."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)

    return run


async def _read_in_pieces(pieces: list[bytes]) -> tuple[ProxyHeader | Exception, bytes]:
    """Send `pieces` with pauses; the header read, and what is left on the socket."""
    server, client = socket.socketpair()
    server.setblocking(False)
    loop = asyncio.get_running_loop()

    async def send() -> None:
        for piece in pieces:
            client.sendall(piece)
            await asyncio.sleep(0.02)
        client.shutdown(socket.SHUT_WR)

    sending = asyncio.create_task(send())
    try:
        result: ProxyHeader | Exception = await read_header(loop, server)
    except (ProxyHeaderError, ConnectionResetError) as exc:
        result = exc
    await sending
    rest = b""
    server.setblocking(True)
    while chunk := server.recv(4096):
        rest += chunk
    server.close()
    client.close()
    return result, rest


def test_the_header_is_taken_and_not_one_byte_more(run: Run) -> None:
    # A TLS ClientHello right behind the header, in the same write: it stays on the socket.
    hello = b"\x16\x03\x01\x00\x05hello"
    for header in (b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n", v2(tlvs=tlv(5, b"id"))):
        result, rest = run(_read_in_pieces([header + hello]))
        assert result == parse_header(header)
        assert rest == hello


def test_a_header_trickling_in_is_read_whole(run: Run) -> None:
    header = v2(tlvs=tlv(0x05, b"u" * 200))
    pieces = [header[:3], header[3:14], header[14:17], header[17:100], header[100:] + b"EHLO"]
    result, rest = run(_read_in_pieces(pieces))
    assert result == ProxyHeader(2, "192.0.2.7")
    assert rest == b"EHLO"
    line = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n"
    result, rest = run(_read_in_pieces([line[:4], line[4:30], line[30:-1], line[-1:] + b"Q"]))
    assert result == ProxyHeader(1, "192.0.2.7")
    assert rest == b"Q"


def test_a_peer_closing_inside_the_header_or_sending_garbage_is_an_error(run: Run) -> None:
    result, _ = run(_read_in_pieces([b"PROXY TCP4 192.0.2.7"]))
    assert isinstance(result, ConnectionResetError)
    result, _ = run(_read_in_pieces([b"EHLO client.example\r\n"]))
    assert isinstance(result, ProxyHeaderError)
    result, _ = run(_read_in_pieces([v2()[:20]]))  # v2 cut inside its addresses
    assert isinstance(result, ConnectionResetError)


# --- whom a listener trusts ------------------------------------------------------


def test_trusted_balancers_and_relay_networks_match_ipv4_seen_through_a_dual_stack_socket() -> None:
    proxies = ProxyProtocolConfig(trusted=["10.0.5.10/32", "2001:db8:5::/64"])
    assert proxies.enabled and not ProxyProtocolConfig().enabled
    for ip in ("10.0.5.10", "::ffff:10.0.5.10", "2001:db8:5::9"):
        assert proxies.trusts(ip), ip
    for ip in ("10.0.5.11", "2001:db8:6::9", "not an address", ""):
        assert not proxies.trusts(ip), ip
    ehr = RelayNetwork(name="ehr", networks=["10.20.0.0/16"], domains=["clinic.example.org"])
    assert relay_network_for([ehr], "::ffff:10.20.1.2") is ehr
    assert relay_network_for([ehr], "10.21.1.2") is None
