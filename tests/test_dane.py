"""DANE (RFC 7672): TLSA lookups trust only a validating resolver's AD flag, and
chains are authenticated by every usage, selector and matching type SMTP uses."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from certs import issue, make_certs
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from dns_server import LoopbackDns

from gateway.delivery.dane import DaneError, DaneResolver, Tlsa, authenticate


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def record(usage: int, selector: int, matching: int, cert: x509.Certificate) -> Tlsa:
    data = (
        cert.public_bytes(Encoding.DER)
        if selector == 0
        else cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    if matching == 1:
        data = hashlib.sha256(data).digest()
    elif matching == 2:
        data = hashlib.sha512(data).digest()
    return Tlsa(usage, selector, matching, data)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, x509.Certificate]:
    make_certs(tmp_path)
    return {
        "ca": load(tmp_path / "ca.crt"),
        "leaf": load(issue(tmp_path, "mx", ["mx.example.test"])["cert"]),
        "expired": load(issue(tmp_path, "old", ["mx.example.test"], valid_days=(-9, -1))["cert"]),
        "selfsigned": load(issue(tmp_path, "self", ["nothing.test"], self_signed=True)["cert"]),
    }


NOW = datetime.now(UTC)


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("matching", [0, 1, 2])
def test_dane_ee_matches_the_leaf_whatever_its_name_or_dates(
    pki: dict[str, x509.Certificate], selector: int, matching: int
) -> None:
    for leaf in (pki["selfsigned"], pki["expired"]):
        assert authenticate([leaf], [record(3, selector, matching, leaf)], ["mx.x"], NOW) == (
            "dane-ee"
        )


@pytest.mark.parametrize("selector", [0, 1])
def test_dane_ta_needs_the_anchor_in_the_chain_and_a_matching_name(
    pki: dict[str, x509.Certificate], selector: int
) -> None:
    ta = [record(2, selector, 1, pki["ca"])]
    chain = [pki["leaf"], pki["ca"]]
    assert authenticate(chain, ta, ["mx.example.test"], NOW) == "dane-ta"
    # The recipient domain is a reference name too.
    assert authenticate(chain, ta, ["other.test", "mx.example.test"], NOW) == "dane-ta"
    with pytest.raises(DaneError):
        authenticate(chain, ta, ["wrong.example.test"], NOW)
    with pytest.raises(DaneError):  # anchor not presented
        authenticate([pki["leaf"]], ta, ["mx.example.test"], NOW)
    with pytest.raises(DaneError):  # expired leaf under DANE-TA
        authenticate([pki["expired"], pki["ca"]], ta, ["mx.example.test"], NOW)
    later = NOW + timedelta(days=60)  # beyond the leaf's validity
    with pytest.raises(DaneError):
        authenticate(chain, ta, ["mx.example.test"], later)


def test_records_that_match_nothing_fail(pki: dict[str, x509.Certificate]) -> None:
    wrong = [Tlsa(3, 1, 1, b"\x00" * 32), record(2, 0, 1, pki["selfsigned"])]
    with pytest.raises(DaneError, match="no certificate presented matches"):
        authenticate([pki["leaf"], pki["ca"]], wrong, ["mx.example.test"], NOW)
    with pytest.raises(DaneError):
        authenticate([], wrong, ["mx.example.test"], NOW)


def test_pkix_usages_are_not_usable_for_smtp(pki: dict[str, x509.Certificate]) -> None:
    assert not record(0, 0, 1, pki["ca"]).usable
    assert not record(1, 0, 1, pki["leaf"]).usable
    assert record(3, 1, 1, pki["leaf"]).usable and record(2, 0, 2, pki["ca"]).usable


def test_the_resolver_believes_only_authenticated_answers() -> None:
    async def lookups(dns: LoopbackDns) -> tuple[bool, int, str | None]:
        resolver = DaneResolver([dns.nameserver], timeout=2.0)
        secure = await resolver.mx_secure("example.test")
        found = await resolver.tlsa("mx.example.test", 25)
        return secure, len(found.usable), found.temporary

    with LoopbackDns() as dns:
        dns.add("example.test", "MX", "10 mx.example.test.")
        dns.add("_25._tcp.mx.example.test", "TLSA", "3 1 1 " + "ab" * 32)
        assert asyncio.run(lookups(dns)) == (False, 0, None)  # no AD: insecure, ignored
        dns.authenticated = True
        assert asyncio.run(lookups(dns)) == (True, 1, None)
        dns.servfail_types.add(("_25._tcp.mx.example.test", "TLSA"))
        secure, usable, temporary = asyncio.run(lookups(dns))
        assert secure and usable == 0 and temporary and "TLSA lookup" in temporary


def test_cached_answers_keep_the_security_they_came_with() -> None:
    async def lookups(resolver: DaneResolver, fresh: bool = False) -> tuple[bool, int]:
        secure = await resolver.mx_secure("example.test", fresh)
        found = await resolver.tlsa("mx.example.test", 25, fresh)
        return secure, len(found.usable)

    async def run(dns: LoopbackDns) -> None:
        resolver = DaneResolver([dns.nameserver], timeout=2.0, cache_seconds=60)
        assert await lookups(resolver) == (False, 0)  # no AD: insecure
        dns.authenticated = True
        # A kept insecure answer is never taken as validated ...
        assert await lookups(resolver) == (False, 0)
        # ... and a retry asks the validating resolver again.
        assert await lookups(resolver, fresh=True) == (True, 1)
        queries = len(dns.queries)
        assert await lookups(resolver) == (True, 1)  # validated, within its TTL: kept
        assert len(dns.queries) == queries
        dns.servfail_types.add(("_25._tcp.mx.example.test", "TLSA"))
        found = await resolver.tlsa("mx.example.test", 25, fresh=True)
        assert found.temporary and not found.records
        dns.servfail_types.clear()
        # The failure was not kept: the next lookup asks again.
        assert len((await resolver.tlsa("mx.example.test", 25)).usable) == 1

    with LoopbackDns() as dns:
        dns.add("example.test", "MX", "10 mx.example.test.")
        dns.add("_25._tcp.mx.example.test", "TLSA", "3 1 1 " + "ab" * 32)
        asyncio.run(run(dns))
