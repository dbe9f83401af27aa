"""DANE for SMTP (RFC 7672): TLSA lookups through a validating resolver, and
authentication of a server's certificate chain against them.

Only the resolvers named in `delivery.dane_resolvers` are asked, and only their
"authenticated data" flag is believed: an answer without it is treated as if no
TLSA records existed (insecure), never as a reason to trust the certificate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from gateway.delivery.mx import Lookups, dns_cache, make_resolver

# RFC 7218 names of the usages SMTP clients honour (RFC 7672 §3.1).
DANE_TA = 2
DANE_EE = 3


@dataclass(frozen=True)
class Tlsa:
    usage: int
    selector: int  # 0: whole certificate, 1: SubjectPublicKeyInfo
    matching: int  # 0: exact, 1: SHA-256, 2: SHA-512
    data: bytes

    @property
    def usable(self) -> bool:
        """RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are not used for SMTP."""
        return (
            self.usage in (DANE_TA, DANE_EE)
            and self.selector in (0, 1)
            and self.matching in (0, 1, 2)
        )

    def text(self) -> str:
        return f"{self.usage} {self.selector} {self.matching} {self.data.hex()}"

    def matches(self, cert: x509.Certificate) -> bool:
        if self.selector == 0:
            selected = cert.public_bytes(Encoding.DER)
        else:
            selected = cert.public_key().public_bytes(
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo
            )
        if self.matching == 1:
            selected = hashlib.sha256(selected).digest()
        elif self.matching == 2:
            selected = hashlib.sha512(selected).digest()
        return selected == self.data


@dataclass(frozen=True)
class TlsaLookup:
    """What DNS says about one MX host. `temporary` failures defer delivery
    (RFC 7672 §2.2: a lookup that may have been tampered with is not "no DANE")."""

    records: tuple[Tlsa, ...] = ()
    temporary: str | None = None

    @property
    def usable(self) -> tuple[Tlsa, ...]:
        return tuple(r for r in self.records if r.usable)


class DaneError(Exception):
    """The certificate chain does not match the server's TLSA records."""

    def __init__(self, reason: str, result_type: str = "validation-failure") -> None:
        super().__init__(reason)
        self.reason = reason
        self.result_type = result_type  # RFC 8460 result type


class DaneResolver:
    """TLSA and MX-security lookups through DNSSEC-validating resolvers."""

    def __init__(
        self, resolvers: Sequence[str], timeout: float = 5.0, cache_seconds: float = 0.0
    ) -> None:
        """`cache_seconds`: answers are reused for their TTL, at most this long.
        An answer is kept as it came, with its AD flag: the cache never makes an
        insecure answer secure, and a secure one lasts no longer than its TTL,
        which a validating resolver keeps within the signatures' validity."""
        resolver = make_resolver(resolvers, timeout, dns_cache(cache_seconds))
        # Ask for validation (DO) and for the AD bit in the answer.
        resolver.use_edns(0, dns.flags.DO, 1232)
        resolver.flags = dns.flags.RD | dns.flags.AD
        self._lookups = Lookups(resolver, timeout)

    async def _secure_answer(
        self, name: str, rdtype: dns.rdatatype.RdataType, fresh: bool
    ) -> dns.resolver.Answer | None:
        """The answer if the resolver vouches for it (AD), None if insecure or empty;
        `fresh` asks the resolver even for answers still cached.

        Raises dns.exception.DNSException or TimeoutError when there is no answer."""
        try:
            answer = await self._lookups.answer(dns.name.from_text(name), rdtype, fresh)
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            return None
        if not answer.response.flags & dns.flags.AD:
            return None
        return answer

    async def mx_secure(self, domain: str, fresh: bool = False) -> bool:
        """Whether the domain's MX RRset validates: only then are the MX hosts'
        TLSA records used (RFC 7672 §2.2.1). Lookup trouble counts as insecure."""
        try:
            return await self._secure_answer(domain, dns.rdatatype.MX, fresh) is not None
        except (dns.exception.DNSException, TimeoutError):
            return False

    async def tlsa(self, host: str, port: int = 25, fresh: bool = False) -> TlsaLookup:
        try:
            answer = await self._secure_answer(f"_{port}._tcp.{host}", dns.rdatatype.TLSA, fresh)
        except (dns.exception.DNSException, TimeoutError) as exc:
            return TlsaLookup(temporary=f"TLSA lookup for {host} failed: {type(exc).__name__}")
        if answer is None:
            return TlsaLookup()
        return TlsaLookup(
            tuple(
                Tlsa(int(rr.usage), int(rr.selector), int(rr.mtype), bytes(rr.cert))
                for rr in answer
            )
        )


def authenticate(
    chain: Sequence[x509.Certificate],
    records: Sequence[Tlsa],
    names: Sequence[str],
    now: datetime,
) -> str:
    """Authenticate the presented chain (leaf first) against usable TLSA records.

    Returns "dane-ee" or "dane-ta"; raises DaneError. DANE-EE(3) matches the leaf
    and ignores names and dates (RFC 7672 §3.1.1). DANE-TA(2) names a trust anchor
    in the chain; the leaf must chain to it and match one of `names` (the MX host
    or the recipient domain, §3.2.2), within its validity dates.
    """
    if not chain:
        raise DaneError("the server presented no certificate")
    leaf = chain[0]
    if any(r.usage == DANE_EE and r.matches(leaf) for r in records):
        return "dane-ee"
    anchors = [c for c in chain if any(r.usage == DANE_TA and r.matches(c) for r in records)]
    if not anchors:
        raise DaneError("no certificate presented matches the TLSA records")
    store = Store(anchors)
    intermediates = [c for c in chain[1:]]
    failure = "no reference name"
    for name in names:
        verifier = PolicyBuilder().store(store).time(now).build_server_verifier(x509.DNSName(name))
        try:
            verifier.verify(leaf, intermediates)
            return "dane-ta"
        except VerificationError as exc:
            failure = str(exc)
    raise DaneError(
        f"certificate does not chain to the TLSA trust anchor for {', '.join(names)}: {failure}",
        "certificate-host-mismatch" if "name" in failure.lower() else "validation-failure",
    )
