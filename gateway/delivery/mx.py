"""MX routing (RFC 5321 §5.1, RFC 7505) with dnspython's async resolver.

Errors are split into permanent ones (the domain cannot receive mail: bounce
now) and temporary ones (DNS trouble: keep the message queued and retry).
Getting this wrong in the permanent direction loses mail, so anything that is
not clearly a statement from the authoritative DNS is treated as temporary.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdataclass
import dns.rdatatype
import dns.resolver
from dns.rdtypes.ANY.MX import MX

__all__ = [
    "MAX_HOPS",
    "DnsCache",
    "Hop",
    "Lookups",
    "MxResolver",
    "RouteError",
    "dns_cache",
    "make_resolver",
    "parse_nameserver",
]

MAX_HOPS = 10
# Per-attempt timeout handed to each name server; the overall budget per
# lookup is the resolver's ``timeout`` argument.
_ATTEMPT_TIMEOUT = 2.0
# Largest UDP answer we ask for (DNS flag day 2020); bigger answers use TCP.
_EDNS_PAYLOAD = 1232
# RFC 5321 §4.1.2 Let-dig / Ldh-str labels (A-labels for IDNs).
_LABEL_RE = re.compile(rb"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# Answers one process keeps at most (least recently used go first).
DNS_CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class Hop:
    """One candidate next hop: a host name (or IP literal) to connect to."""

    host: str
    port: int
    preference: int


class RouteError(Exception):
    """No route to a domain; ``permanent`` says whether retrying can help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent

    def __str__(self) -> str:
        kind = "permanent" if self.permanent else "temporary"
        return f"{self.message} ({kind})"


def parse_nameserver(spec: str) -> tuple[str, int]:
    """Parse "HOST", "HOST:PORT", "[V6]" or "[V6]:PORT"; HOST must be an IP address."""
    spec = spec.strip()
    port = 53
    if spec.startswith("["):
        host, sep, rest = spec[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"invalid name server: {spec!r}")
        if rest:
            port = _port(rest[1:], spec)
    elif spec.count(":") == 1:
        host, _, port_text = spec.partition(":")
        port = _port(port_text, spec)
    else:
        host = spec  # bare IPv4, or IPv6 without a port
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        raise ValueError(f"name server must be an IP address: {spec!r}") from None


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"invalid name server port: {spec!r}")
    return int(text)


class DnsCache(dns.resolver.LRUCache):
    """dnspython's answer cache, each answer kept for its TTL but at most
    `max_seconds`. dnspython keeps negative answers (NXDOMAIN, no records) for
    their SOA minimum and never keeps failures (SERVFAIL, timeouts)."""

    def __init__(self, max_seconds: float, max_entries: int = DNS_CACHE_ENTRIES) -> None:
        super().__init__(max_entries)
        self.max_seconds = max_seconds

    def put(self, key: dns.resolver.CacheKey, value: dns.resolver.Answer) -> None:
        value.expiration = min(value.expiration, time.time() + self.max_seconds)
        super().put(key, value)

    def forget(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> None:
        """Drop the answer for `name` and `rdtype`, and a kept NXDOMAIN for
        `name`, so that the next lookup asks DNS again and keeps its answer."""
        self.flush((name, rdtype, dns.rdataclass.IN))
        self.flush((name, dns.rdatatype.ANY, dns.rdataclass.IN))


def dns_cache(max_seconds: float) -> DnsCache | None:
    """A cache for answers kept at most `max_seconds`; None (no cache) for 0."""
    return DnsCache(max_seconds) if max_seconds > 0 else None


def make_resolver(
    nameservers: Sequence[str], timeout: float, cache: DnsCache | None = None
) -> dns.asyncresolver.Resolver:
    """An async resolver for the configured name servers (the system's when
    none are given), each attempt bounded, the whole lookup `timeout`, keeping
    its answers in `cache` if one is given."""
    if nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(host, port=ns_port)
            for host, ns_port in map(parse_nameserver, nameservers)
        ]
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.timeout = min(timeout, _ATTEMPT_TIMEOUT)
    resolver.lifetime = timeout
    resolver.use_edns(0, 0, _EDNS_PAYLOAD)
    resolver.cache = cache
    return resolver


_Question = tuple[dns.name.Name, dns.rdatatype.RdataType]


class Lookups:
    """Lookups through one resolver, answers kept in its cache when it has one.
    Concurrent lookups of one name and type share one query, so that a burst
    of deliveries to a domain asks DNS once. One instance per event loop."""

    def __init__(self, resolver: dns.asyncresolver.Resolver, timeout: float) -> None:
        self._resolver = resolver
        self._timeout = timeout
        self._inflight: dict[_Question, asyncio.Task[dns.resolver.Answer]] = {}

    async def answer(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, fresh: bool = False
    ) -> dns.resolver.Answer:
        """`fresh` asks DNS even if an answer is cached (and keeps the new one),
        so that a retry sees what DNS says now. Raises what dnspython raises."""
        question = (name, rdtype)
        # A fresh lookup does not join one that may have been answered from the cache.
        task = None if fresh else self._inflight.get(question)
        if task is None:
            cache = self._resolver.cache
            if fresh and isinstance(cache, DnsCache):
                cache.forget(name, rdtype)
            # dnspython enforces ``lifetime`` itself; the outer bound only
            # guards against a stalled transport, so it is a little longer.
            task = asyncio.ensure_future(
                asyncio.wait_for(
                    self._resolver.resolve(name, rdtype, search=False), self._timeout + 1.0
                )
            )
            self._inflight[question] = task
            task.add_done_callback(partial(self._done, question))
        # Shielded: one waiter being cancelled must not cancel the others' lookup.
        return await asyncio.shield(task)

    def _done(self, question: _Question, task: asyncio.Task[dns.resolver.Answer]) -> None:
        if self._inflight.get(question) is task:
            del self._inflight[question]
        if not task.cancelled():
            task.exception()  # retrieved here too, in case every waiter was cancelled


class MxResolver:
    """Resolve a recipient domain to an ordered list of next hops."""

    def __init__(
        self,
        nameservers: Sequence[str] = (),
        port: int = 25,
        timeout: float = 5.0,
        cache_seconds: float = 0.0,
    ) -> None:
        """`cache_seconds`: answers are reused for their TTL, at most this long
        (0: none is kept), by every task that uses this resolver."""
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._port = port
        self._random = random.Random()
        self._lookups = Lookups(
            make_resolver(nameservers, timeout, dns_cache(cache_seconds)), timeout
        )

    async def hops(self, domain: str, fresh: bool = False) -> list[Hop]:
        """Next hops for ``domain`` in the order they should be tried (at most 10);
        `fresh` asks DNS even for answers still cached.

        Raises RouteError: permanent for NXDOMAIN, null MX or no usable host;
        temporary for SERVFAIL, timeouts and other resolver failures.
        """
        domain = domain.strip()
        if domain.startswith("["):
            return [Hop(_domain_literal(domain), self._port, 0)]
        name = _dns_name(domain)
        domain = _host_text(name)
        try:
            answer = await self._query(name, dns.rdatatype.MX, fresh)
        except dns.resolver.NoAnswer:
            return await self._implicit_mx(name, fresh)
        except dns.resolver.NXDOMAIN:
            raise RouteError(f"domain {domain} does not exist", permanent=True) from None
        except (dns.exception.DNSException, TimeoutError) as exc:
            raise _temporary(f"MX lookup for {domain} failed", exc) from exc

        records = [rr for rr in answer if isinstance(rr, MX)]
        if len(records) == 1 and records[0].exchange == dns.name.root:
            raise RouteError(f"domain {domain} does not accept mail (null MX)", permanent=True)
        # Keep each host once, at its best preference.  "." is never usable,
        # even if a broken zone mixes a null MX with real ones, and neither is
        # a name that is not a valid host name.
        best: dict[str, int] = {}
        for rr in records:
            if not _is_hostname(rr.exchange):
                continue
            host = _host_text(rr.exchange)
            best[host] = min(rr.preference, best.get(host, rr.preference))
        if not best:
            raise RouteError(f"domain {domain} has no usable MX host", permanent=True)
        return self._order(best)[:MAX_HOPS]

    async def addresses(self, host: str, fresh: bool = False) -> list[str]:
        """IPv4 then IPv6 addresses of ``host`` (an IP literal is returned as is);
        `fresh` asks DNS even for answers still cached.

        Returns [] when the name has no addresses; raises a temporary
        RouteError when neither lookup gave a definite answer.
        """
        host = host.strip().strip("[]")
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        name = _dns_name(host)
        a, aaaa = await asyncio.gather(
            self._addresses_of_type(name, dns.rdatatype.A, fresh),
            self._addresses_of_type(name, dns.rdatatype.AAAA, fresh),
        )
        found = [*(a or []), *(aaaa or [])]
        if not found and (a is None or aaaa is None):
            raise RouteError(f"address lookup for {host} failed", permanent=False)
        return found

    async def _implicit_mx(self, name: dns.name.Name, fresh: bool) -> list[Hop]:
        """RFC 5321 §5.1: without MX records the domain itself is the host."""
        domain = _host_text(name)
        try:
            addresses = await self.addresses(domain, fresh)
        except RouteError as exc:
            raise RouteError(f"address lookup for {domain} failed", permanent=False) from exc
        if not addresses:
            raise RouteError(f"domain {domain} has no MX or address records", permanent=True)
        return [Hop(domain, self._port, 0)]

    async def _addresses_of_type(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, fresh: bool
    ) -> list[str] | None:
        """Addresses of one type; [] for a definite "none", None if unknown."""
        try:
            answer = await self._query(name, rdtype, fresh)
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            return []
        except (dns.exception.DNSException, TimeoutError):
            return None
        return [rr.to_text() for rr in answer]

    async def _query(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, fresh: bool
    ) -> dns.resolver.Answer:
        return await self._lookups.answer(name, rdtype, fresh)

    def _order(self, best: dict[str, int]) -> list[Hop]:
        hops = sorted(
            (Hop(host, self._port, pref) for host, pref in best.items()),
            key=lambda hop: hop.preference,
        )
        ordered: list[Hop] = []
        # RFC 5321 §5.1: hosts of equal preference are tried in random order
        # to spread load.
        for _, group in itertools.groupby(hops, key=lambda hop: hop.preference):
            same = list(group)
            self._random.shuffle(same)
            ordered.extend(same)
        return ordered


def _temporary(message: str, exc: BaseException) -> RouteError:
    if isinstance(exc, dns.resolver.NoNameservers):
        reason = "no name server answered (SERVFAIL or refused)"
    elif isinstance(exc, dns.exception.Timeout | TimeoutError):
        reason = "timed out"
    else:
        reason = type(exc).__name__
    return RouteError(f"{message}: {reason}", permanent=False)


def _domain_literal(literal: str) -> str:
    """Address inside "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3)."""
    inner = literal[1:-1] if literal.endswith("]") else ""
    if inner[:5].lower() == "ipv6:":
        inner = inner[5:]
        version = 6
    else:
        version = 4
    try:
        address = ipaddress.ip_address(inner)
    except ValueError:
        raise RouteError(f"invalid domain literal {literal}", permanent=True) from None
    if address.version != version:
        raise RouteError(f"invalid domain literal {literal}", permanent=True)
    return str(address)


def _dns_name(domain: str) -> dns.name.Name:
    """Absolute DNS name for a mail domain; a malformed domain is permanent."""
    try:
        # Unicode domains are converted to A-labels here (IDNA).
        name = dns.name.from_text(domain.rstrip("."))
    except (dns.exception.DNSException, UnicodeError, ValueError):
        name = dns.name.root
    if not _is_hostname(name):
        # !a keeps control characters out of logs and bounce texts.
        raise RouteError(f"invalid domain {domain!a}", permanent=True)
    return name


def _is_hostname(name: dns.name.Name) -> bool:
    labels = name.labels[:-1] if name.is_absolute() else name.labels
    return bool(labels) and all(_LABEL_RE.fullmatch(label) for label in labels)


def _host_text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()
