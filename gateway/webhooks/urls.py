"""Where a webhook may go: https with a verified certificate, to public addresses.

A receiver on an internal network is allowed when its address is in
`webhooks.allowed_networks`, and there plain http:// too. Link-local and
cloud metadata addresses are refused whatever that list says: a webhook must
not be a way to read the host's cloud credentials (SSRF). The name is
resolved and every address it gives is checked when the subscription is
added and again at each connection, and the connection goes to the address
that was checked: a name that changes its answer (DNS rebinding) gains
nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.clients import IPAddress, unmapped

MAX_URL = 2048
_SCHEMES = ("https", "http")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Never a webhook's destination, even inside allowed_networks.
NEVER: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local: AWS, GCP, Azure, OpenStack metadata (169.254.169.254)
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "168.63.129.16/32",  # Azure's wire server
        "0.0.0.0/8",  # "this host"
        "::/128",
        "224.0.0.0/4",  # multicast
        "ff00::/8",
    )
)


class UnsafeUrl(Exception):
    """A URL or address a webhook may not be sent to; the message says why and what to do."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # a name or an IP literal, without brackets
    port: int


def networks(allowed: Sequence[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in allowed)


def parse(url: str) -> Target:
    """The URL's parts, if it is one a webhook may have at all (its addresses aside)."""
    if len(url) > MAX_URL:
        raise UnsafeUrl(f"the URL is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"{url!r} is not a URL ({exc})") from None
    if parts.scheme not in _SCHEMES:
        raise UnsafeUrl(f"{url!r} is not an https:// URL (write e.g. https://app.example/hooks)")
    if not parts.hostname:
        raise UnsafeUrl(f"{url!r} names no host (write e.g. https://app.example/hooks)")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl(
            "the URL holds a user name or password: leave them out (the signature "
            "authenticates phigate to the receiver)"
        )
    if parts.fragment:
        raise UnsafeUrl("the URL has a #fragment, which is never sent: leave it out")
    default = 443 if parts.scheme == "https" else 80
    return Target(url, parts.scheme, parts.hostname, port or default)


def refusal(address: IPAddress, scheme: str, allowed: Sequence[IPNetwork]) -> str | None:
    """Why a webhook may not go to `address`; None if it may."""
    ip = unmapped(address)
    if any(ip in net for net in NEVER):
        return f"{ip} is a link-local, metadata or otherwise reserved address, never allowed"
    if any(ip in net for net in allowed):
        return None
    if not ip.is_global:
        return (
            f"{ip} is a private or loopback address: add its network to "
            "webhooks.allowed_networks in phigate.yaml if the receiver is meant to be there"
        )
    if scheme != "https":
        return (
            f"plain http:// to {ip} would send events in clear: use https://, or add the "
            "receiver's network to webhooks.allowed_networks if it is internal"
        )
    return None


def check(target: Target, addresses: Sequence[str], allowed: Sequence[IPNetwork]) -> str:
    """The address to connect to: the first of those `target.host` resolved to, once
    every one of them passed; UnsafeUrl otherwise."""
    if not addresses:
        raise UnsafeUrl(f"{target.host} resolves to no address")
    for text in addresses:
        reason = refusal(ipaddress.ip_address(text.partition("%")[0]), target.scheme, allowed)
        if reason is not None:
            raise UnsafeUrl(f"{target.host}: {reason}")
    return addresses[0]


def resolve(host: str, port: int) -> list[str]:
    """The addresses of `host` (a name or an IP literal), in the resolver's order."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeUrl(
            f"{host} does not resolve ({exc.strerror or exc}): check the URL's host"
        ) from None
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def checked(url: str, allowed: Sequence[IPNetwork]) -> Target:
    """`phigate webhook add`'s check: the URL and the addresses its host has now."""
    target = parse(url)
    check(target, resolve(target.host, target.port), allowed)
    return target
