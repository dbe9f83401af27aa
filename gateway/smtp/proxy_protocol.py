"""The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), parsed.

A load balancer that forwards a TCP connection begins it with one header naming
the client it came from. These functions read nothing themselves: the caller
takes bytes off the socket, asking `header_length` how many belong to the
header so that not one byte past it is taken (with implicit TLS the client's
handshake follows at once), then hands the whole header to `parse_header`.

Errors name what is wrong in fixed words, never the bytes received.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from gateway.clients import IPAddress, unmapped

V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# The longest v1 line, CRLF included ("PROXY TCP6" with two full IPv6 addresses).
V1_MAX_LENGTH = 107
V2_FIXED_LENGTH = 16

_V1_PORT = re.compile(r"0|[1-9][0-9]{0,4}")
# v2: the address block's size per family (INET, INET6, UNIX), before any TLVs.
_V2_ADDRESS_SIZES = {1: 12, 2: 36, 3: 216}
_V2_LOCAL, _V2_PROXY = 0, 1
_V2_UNSPEC, _V2_INET, _V2_INET6, _V2_UNIX = 0, 1, 2, 3
_V2_STREAM = 1


class ProxyHeaderError(ValueError):
    """A header that is not a valid PROXY protocol header; the text says why, in fixed words."""


@dataclass(frozen=True)
class ProxyHeader:
    version: int
    # The client's address; None when the load balancer speaks for itself (v1
    # UNKNOWN, v2 LOCAL such as a health check, or a client on a UNIX socket).
    client_ip: str | None


def header_length(data: bytes) -> int | None:
    """The length of the header that `data` begins with; None while `data` is too short to tell.

    None also means every byte of `data` belongs to the header. Raises
    ProxyHeaderError as soon as `data` cannot begin a header.
    """
    if data[:1] == V1_PREFIX[:1]:
        if not V1_PREFIX.startswith(data[: len(V1_PREFIX)]):
            raise ProxyHeaderError("not a PROXY protocol header")
        end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
        if end >= 0:
            return end + 2
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyHeaderError("v1 header longer than 107 bytes")
        return None
    if not V2_SIGNATURE.startswith(data[: len(V2_SIGNATURE)]):
        raise ProxyHeaderError("not a PROXY protocol header")
    if len(data) < V2_FIXED_LENGTH:
        return None
    return V2_FIXED_LENGTH + int.from_bytes(data[14:16], "big")


def parse_header(header: bytes) -> ProxyHeader:
    """The client a whole header names (as `header_length` measured it); raises ProxyHeaderError."""
    if header.startswith(V1_PREFIX):
        return _parse_v1(header)
    return _parse_v2(header)


def _parse_v1(header: bytes) -> ProxyHeader:
    if not header.endswith(b"\r\n") or len(header) > V1_MAX_LENGTH:
        raise ProxyHeaderError("v1 header not ended by CRLF")
    try:
        line = header[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("v1 header not ASCII") from None
    fields = line.split(" ")
    if fields[1:2] == ["UNKNOWN"]:  # the rest of the line is to be ignored
        return ProxyHeader(1, None)
    if len(fields) != 6:
        raise ProxyHeaderError("v1 header without 6 fields")
    _, family, source, destination, source_port, destination_port = fields
    kinds: dict[str, type[IPAddress]] = {
        "TCP4": ipaddress.IPv4Address,
        "TCP6": ipaddress.IPv6Address,
    }
    if family not in kinds:
        raise ProxyHeaderError("v1 protocol neither TCP4, TCP6 nor UNKNOWN")
    try:
        client = kinds[family](source)
        kinds[family](destination)
    except ValueError:
        raise ProxyHeaderError("v1 address malformed") from None
    for port in (source_port, destination_port):
        if not _V1_PORT.fullmatch(port) or int(port) > 65535:
            raise ProxyHeaderError("v1 port malformed")
    return ProxyHeader(1, str(unmapped(client)))


def _parse_v2(header: bytes) -> ProxyHeader:
    version_command, family_transport = header[12], header[13]
    if version_command >> 4 != 2:
        raise ProxyHeaderError("v2 header of another version")
    command = version_command & 0x0F
    if command not in (_V2_LOCAL, _V2_PROXY):
        raise ProxyHeaderError("v2 command neither LOCAL nor PROXY")
    if command == _V2_LOCAL:  # the balancer's own connection: its addresses are to be ignored
        return ProxyHeader(2, None)
    family, transport = family_transport >> 4, family_transport & 0x0F
    if family == _V2_UNSPEC:  # a client the balancer cannot name
        return ProxyHeader(2, None)
    if family not in _V2_ADDRESS_SIZES:
        raise ProxyHeaderError("v2 address family unknown")
    if transport != _V2_STREAM:
        raise ProxyHeaderError("v2 transport not a stream")
    body = header[V2_FIXED_LENGTH:]
    size = _V2_ADDRESS_SIZES[family]
    if len(body) < size:
        raise ProxyHeaderError("v2 addresses truncated")
    _check_tlvs(body[size:])
    if family == _V2_UNIX:
        return ProxyHeader(2, None)
    client = ipaddress.ip_address(body[:4] if family == _V2_INET else body[:16])
    # An IPv4 client of a dual-stack balancer may be named as ::ffff:a.b.c.d.
    return ProxyHeader(2, str(unmapped(client)))


def _check_tlvs(tlvs: bytes) -> None:
    """Extensions (TLVs) are not used, but they must be whole: else the header is garbled."""
    offset = 0
    while offset < len(tlvs):
        if offset + 3 > len(tlvs):
            raise ProxyHeaderError("v2 extension (TLV) truncated")
        offset += 3 + int.from_bytes(tlvs[offset + 1 : offset + 3], "big")
        if offset > len(tlvs):
            raise ProxyHeaderError("v2 extension (TLV) truncated")
