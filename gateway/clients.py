"""Who a per-client limit counts, and the open connections of one listening socket.

Shared by the SMTP listeners and the web app: a client is an IPv4 address or
an IPv6 /64, and each listening socket keeps at most `max_connections` open,
at most `max_connections_per_ip` of them from one client.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def unmapped(address: IPAddress) -> IPAddress:
    """The address itself, or the IPv4 address a dual-stack socket names as ::ffff:a.b.c.d."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_key(ip: str) -> str:
    """Who a per-client limit counts: an IPv4 address, or an IPv6 /64.

    An IPv6 host is routinely given a whole /64, so counting single
    addresses would let it be a new client on every connection.
    """
    try:
        address = unmapped(ipaddress.ip_address(ip))
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ConnectionLimits(Protocol):
    @property
    def max_connections(self) -> int: ...

    @property
    def max_connections_per_ip(self) -> int: ...


@dataclass
class ConnectionCounter:
    """Counts one listening socket's open connections, in total and per client."""

    limits: ConnectionLimits
    total: int = 0
    per_client: dict[str, int] = field(default_factory=dict)

    def admit(self, ip: str) -> str | None:
        """Take a slot, or return why not."""
        key = client_key(ip)
        if self.total >= self.limits.max_connections:
            return "too many connections; try again later"
        if self.per_client.get(key, 0) >= self.limits.max_connections_per_ip:
            return "too many connections from your address; try again later"
        self.total += 1
        self.per_client[key] = self.per_client.get(key, 0) + 1
        return None

    def release(self, ip: str) -> None:
        key = client_key(ip)
        self.total -= 1
        left = self.per_client.get(key, 1) - 1
        if left:
            self.per_client[key] = left
        else:
            self.per_client.pop(key, None)
