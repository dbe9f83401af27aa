"""MTA-STS: policy parsing and matching, and discovery, fetch and cache against
a real DNS server and a real HTTPS server on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from certs import host_context, make_certs
from dns_server import LoopbackDns
from harness import wait_until
from https_server import HttpsServer

from gateway.delivery.mtasts import (
    FETCH_ERROR,
    MAX_POLICY_BYTES,
    POLICY_INVALID,
    POLICY_PATH,
    WEBPKI_INVALID,
    MtaStsResolver,
    StsLookup,
)
from gateway.delivery.mtasts_policy import (
    MAX_AGE_LIMIT,
    PolicyError,
    StsPolicy,
    parse_policy,
    parse_txt_records,
)

DOMAIN = "example.test"
POLICY_HOST = f"mta-sts.{DOMAIN}"
TXT_NAME = f"_mta-sts.{DOMAIN}"
ENFORCE = (
    b"version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\n"
    b"mx: *.mail.example.test\r\nmax_age: 86400\r\n"
)


def _policy(mode: str = "enforce", max_age: int = 86400, mx: str = "mx1.example.test") -> bytes:
    return f"version: STSv1\nmode: {mode}\nmx: {mx}\nmax_age: {max_age}\n".encode()


# -- parsing ---------------------------------------------------------------------------


def test_parse_policy_crlf() -> None:
    policy = parse_policy(ENFORCE.decode(), "20240101")
    assert policy == StsPolicy(
        mode="enforce",
        mx=("mx1.example.test", "*.mail.example.test"),
        max_age=86400,
        id="20240101",
        text=ENFORCE.decode(),
    )


def test_parse_policy_lf_unknown_keys_duplicates_and_case() -> None:
    text = (
        "version: STSv1\nmode:testing\nmode: enforce\nx-note: hello world\n"
        "mx: MX1.Example.TEST.\nmax_age:  600  \nmax_age: 5\n\n"
    )
    policy = parse_policy(text, "a1")
    # The first of a repeated field counts; mx patterns are lower case, no final dot.
    assert (policy.mode, policy.mx, policy.max_age) == ("testing", ("mx1.example.test",), 600)


def test_mode_none_needs_no_mx() -> None:
    policy = parse_policy("version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n", "x")
    assert policy.mode == "none" and policy.mx == ()


def test_max_age_above_the_limit_is_capped() -> None:
    policy = parse_policy(_policy(max_age=99_999_999).decode(), "x")
    assert policy.max_age == MAX_AGE_LIMIT
    assert parse_policy(_policy(max_age=0).decode(), "x").max_age == 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("mode: enforce\nmx: a.example\nmax_age: 1\n", "version field is missing"),
        ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "version must be STSv1"),
        ("version: STSv1\nmode: report\nmx: a.example\nmax_age: 1\n", "mode must be"),
        ("version: STSv1\nmx: a.example\nmax_age: 1\n", "mode field is missing"),
        ("version: STSv1\nmode: enforce\nmx: a.example\n", "max_age field is missing"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "max_age must be"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n", "max_age must"),
        ("version: STSv1\nmode: testing\nmax_age: 1\n", "needs at least one mx"),
        ("version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n", "not a host name"),
        ("version: STSv1\nmode: enforce\nmx: mail_1.example\nmax_age: 1\n", "not a host name"),
        ("version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n", "not a host name"),
        ("version: STSv1\nmode enforce\nmx: a.example\nmax_age: 1\n", "line 2 is not"),
        ("version: STSv1\nmode:\nmx: a.example\nmax_age: 1\n", "line 2 (mode) has no value"),
        ("<html>version: STSv1</html>", "line 1 is not"),
    ],
)
def test_invalid_policies_say_why(text: str, reason: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "x")
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("mx1.example.test", True),
        ("MX1.Example.Test.", True),
        ("a.mail.example.test", True),
        ("A.MAIL.EXAMPLE.TEST.", True),
        ("mail.example.test", False),  # the wildcard's parent itself
        ("a.b.mail.example.test", False),  # two labels for one wildcard
        (".mail.example.test", False),  # an empty label
        ("mx2.example.test", False),
        ("xmx1.example.test", False),
        ("mx1.example.test.evil", False),
        ("", False),
    ],
)
def test_mx_matching(host: str, expected: bool) -> None:
    policy = parse_policy(ENFORCE.decode(), "x")
    assert policy.matches(host) is expected


def test_wildcard_matches_exactly_one_label() -> None:
    policy = parse_policy(_policy(mx="*.example.com").decode(), "x")
    assert policy.matches("mail.example.com")
    assert not policy.matches("a.b.example.com")
    assert not policy.matches("example.com")


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (["v=STSv1; id=20240101T000000;"], "20240101T000000"),
        (["v=STSv1;id=abc"], "abc"),
        (["v=STSv1; x-ext=yes; id=abc;"], "abc"),
        (["v=STSv1; id=abc; id=def"], "abc"),  # the first id counts
        (["v=spf1 -all", "v=STSv1; id=abc;"], "abc"),  # other TXT records are ignored
        (["v=STSv1; id=abc;", "v=STSv1; id=def;"], None),  # two records: no policy
        ([], None),
        (["v=STSv1; id=;"], None),
        (["v=STSv1; id=has-dash;"], None),
        (["v=STSv1; id=" + "a" * 33], None),
        (["v=STSv1; x=1"], None),  # no id
        (["v=STSv1; id=abc; junk"], None),
        (["v=STSv10; id=abc"], None),
        (["V=STSv1; id=abc"], None),
    ],
)
def test_txt_records(records: list[str], expected: str | None) -> None:
    assert parse_txt_records(records) == expected


# -- a test domain on loopback -----------------------------------------------------------


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    make_certs(directory)
    return directory


@dataclass
class Site:
    """A recipient domain publishing MTA-STS: its DNS, its policy server, our cache."""

    dns: LoopbackDns
    web: HttpsServer
    ca: Path
    cache: Path

    def resolver(self, timeout: float = 2.0, txt_cache_seconds: float = 0.0) -> MtaStsResolver:
        return MtaStsResolver(
            [self.dns.nameserver],
            self.cache,
            https_port=self.web.port,
            ca_file=str(self.ca),
            timeout=timeout,
            txt_cache_seconds=txt_cache_seconds,
        )

    def publish(self, policy_id: str, body: bytes = ENFORCE, **response: Any) -> None:
        """Serve ``body`` as the policy, announced under ``policy_id``."""
        self.dns.remove(TXT_NAME, "TXT")
        self.dns.add(TXT_NAME, "TXT", f'"v=STSv1; id={policy_id};"')
        self.web.serve(POLICY_PATH, body, **response)

    def txt_queries(self) -> int:
        return sum(1 for name, rdtype, _ in self.dns.queries if (name, rdtype) == (TXT_NAME, "TXT"))

    def fetches(self) -> int:
        return self.web.count(POLICY_PATH)


@pytest.fixture
def site(tmp_path: Path, cert_dir: Path) -> Iterator[Site]:
    with (
        LoopbackDns() as dns,
        HttpsServer(host_context(cert_dir, POLICY_HOST)) as web,
    ):
        dns.add(POLICY_HOST, "A", "127.0.0.1")
        yield Site(dns, web, cert_dir / "ca.crt", tmp_path / "mta-sts")


def _lookup(resolver: MtaStsResolver, domain: str = DOMAIN) -> StsLookup:
    async def run() -> StsLookup:
        try:
            return await resolver.lookup(domain)
        finally:
            await resolver.aclose()

    return asyncio.run(run())


def _lookups(resolver: MtaStsResolver, count: int, domain: str = DOMAIN) -> list[StsLookup]:
    """``count`` lookups one after the other in one event loop."""

    async def run() -> list[StsLookup]:
        try:
            return [await resolver.lookup(domain) for _ in range(count)]
        finally:
            await resolver.aclose()

    return asyncio.run(run())


# -- discovery and fetch ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["enforce", "testing", "none"])
def test_policy_is_fetched_verified_and_cached_on_disk(site: Site, mode: str) -> None:
    site.publish("20240101", _policy(mode))
    result = _lookup(site.resolver())
    assert result.failure is None
    assert result.policy is not None
    assert (result.policy.mode, result.policy.id, result.policy.max_age) == (
        mode,
        "20240101",
        86400,
    )
    assert result.policy.matches("mx1.example.test")
    # One request, to the policy host by name: SNI and Host, though the URL has the address.
    [request] = site.web.requests
    assert request.server_name == POLICY_HOST
    assert request.host == f"{POLICY_HOST}:{site.web.port}"
    path = site.cache / f"{DOMAIN}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(site.cache.stat().st_mode) == 0o700
    stored = json.loads(path.read_text())
    assert (stored["id"], stored["policy"]) == ("20240101", _policy(mode).decode())
    assert [p.name for p in site.cache.iterdir()] == [f"{DOMAIN}.json"]  # no temp files left


def test_policy_host_is_resolved_through_the_configured_name_servers(site: Site) -> None:
    # "example.test" exists only in the loopback DNS: a policy means it was asked.
    site.publish("1")
    assert _lookup(site.resolver()).policy is not None
    asked = {(name, rdtype) for name, rdtype, _ in site.dns.queries}
    assert (POLICY_HOST, "A") in asked


def test_same_id_is_not_fetched_again(site: Site) -> None:
    site.publish("1")
    results = _lookups(site.resolver(), 3)
    assert all(r.policy is not None and r.policy.id == "1" for r in results)
    assert site.txt_queries() == 3  # txt_cache_seconds=0: DNS asked every time
    assert site.fetches() == 1


def test_new_id_triggers_a_refetch(site: Site) -> None:
    site.publish("1", _policy("testing"))

    async def run(resolver: MtaStsResolver) -> tuple[StsLookup, StsLookup]:
        first = await resolver.lookup(DOMAIN)
        site.publish("2", _policy("enforce"))
        second = await resolver.lookup(DOMAIN)
        await resolver.aclose()
        return first, second

    first, second = asyncio.run(run(site.resolver()))
    assert first.policy is not None and (first.policy.id, first.policy.mode) == ("1", "testing")
    assert second.policy is not None and (second.policy.id, second.policy.mode) == ("2", "enforce")
    assert site.fetches() == 2


def test_expired_policy_is_fetched_again(site: Site) -> None:
    site.publish("1", _policy(max_age=1))

    async def run(resolver: MtaStsResolver) -> list[StsLookup]:
        first = await resolver.lookup(DOMAIN)
        await asyncio.sleep(1.2)
        second = await resolver.lookup(DOMAIN)
        await resolver.aclose()
        return [first, second]

    results = asyncio.run(run(site.resolver()))
    assert all(r.policy is not None and r.failure is None for r in results)
    assert site.fetches() == 2


def test_domain_case_and_final_dot_do_not_matter(site: Site) -> None:
    site.publish("1")
    result = _lookup(site.resolver(), "Example.TEST.")
    assert result.policy is not None and result.policy.id == "1"
    assert (site.cache / f"{DOMAIN}.json").exists()


def test_split_txt_strings_are_one_record(site: Site) -> None:
    site.web.serve(POLICY_PATH, ENFORCE)
    site.dns.add(TXT_NAME, "TXT", '"v=STSv1; " "id=split1;"')
    result = _lookup(site.resolver())
    assert result.policy is not None and result.policy.id == "split1"


# -- no policy, and DNS failures ------------------------------------------------------


def test_no_txt_record_means_no_policy_and_no_fetch(site: Site) -> None:
    site.web.serve(POLICY_PATH, ENFORCE)
    assert _lookup(site.resolver()) == StsLookup(None)  # NXDOMAIN
    site.dns.add(TXT_NAME, "A", "127.0.0.1")
    assert _lookup(site.resolver()) == StsLookup(None)  # the name exists, no TXT
    assert site.fetches() == 0


def test_several_sts_records_mean_no_policy(site: Site) -> None:
    site.publish("1")
    site.dns.add(TXT_NAME, "TXT", '"v=STSv1; id=2;"')
    assert _lookup(site.resolver()) == StsLookup(None)
    assert site.fetches() == 0


def test_txt_servfail_without_cache_is_a_fetch_error(site: Site) -> None:
    site.publish("1")
    site.dns.fail(TXT_NAME, "TXT")
    result = _lookup(site.resolver())
    assert (result.policy, result.failure) == (None, FETCH_ERROR)
    assert result.detail is not None and "SERVFAIL" in result.detail
    assert site.fetches() == 0


def test_txt_timeout_without_cache_is_a_fetch_error(site: Site) -> None:
    site.publish("1")
    site.dns.ignore(TXT_NAME)
    started = time.monotonic()
    result = _lookup(site.resolver(timeout=0.5))
    assert (result.policy, result.failure) == (None, FETCH_ERROR)
    assert result.detail is not None and "timed out" in result.detail
    assert time.monotonic() - started < 3


def test_cached_policy_survives_dns_trouble_and_a_removed_record(site: Site) -> None:
    site.publish("1")

    async def run(resolver: MtaStsResolver) -> list[StsLookup]:
        fetched = await resolver.lookup(DOMAIN)
        site.dns.fail(TXT_NAME, "TXT")
        servfail = await resolver.lookup(DOMAIN)
        site.dns.servfail_types.clear()
        site.dns.remove(TXT_NAME)
        removed = await resolver.lookup(DOMAIN)
        await resolver.aclose()
        return [fetched, servfail, removed]

    fetched, servfail, removed = asyncio.run(run(site.resolver()))
    assert fetched.policy is not None
    assert servfail == StsLookup(fetched.policy, FETCH_ERROR, servfail.detail)
    # A TXT record that vanished does not end a policy early (RFC 8461 §10.2):
    # stripping DNS answers must not switch enforcement off.
    assert removed == StsLookup(fetched.policy)
    assert site.fetches() == 1


# -- fetch failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "failure", "detail"),
    [
        (
            {"status": 301, "headers": {"Location": "https://mta-sts.example.test/p"}},
            FETCH_ERROR,
            "redirect",
        ),
        ({"status": 302, "headers": {"Location": "/other"}}, FETCH_ERROR, "redirect"),
        ({"status": 404}, FETCH_ERROR, "HTTP 404"),
        ({"status": 500}, FETCH_ERROR, "HTTP 500"),
        ({"content_type": "text/html"}, POLICY_INVALID, "not text/plain"),
        ({"content_type": None}, POLICY_INVALID, "not text/plain"),
        ({"body": b"mode: enforce\r\n"}, POLICY_INVALID, "version field is missing"),
        (
            {"body": b"version: STSv1\r\nmode: enforce\r\nmax_age: \xff\r\n"},
            POLICY_INVALID,
            "UTF-8",
        ),
        ({"body": ENFORCE + b"x" * MAX_POLICY_BYTES}, POLICY_INVALID, "larger than"),
        (
            {"body": ENFORCE + b"x" * MAX_POLICY_BYTES, "content_length": False},
            POLICY_INVALID,
            "larger than",
        ),
        ({"headers": {"Content-Encoding": "gzip"}}, POLICY_INVALID, "encoded"),
    ],
)
def test_fetch_failures_are_classified(
    site: Site, response: dict[str, Any], failure: str, detail: str
) -> None:
    site.publish("1", **response)
    site.web.serve("/p", ENFORCE)
    site.web.serve("/other", ENFORCE)
    result = _lookup(site.resolver())
    assert (result.policy, result.failure) == (None, failure)
    assert result.detail is not None and detail in result.detail
    assert site.web.count() == 1  # a redirect is not followed


def test_charset_parameter_and_body_without_length_are_accepted(site: Site) -> None:
    site.publish("1", content_type="text/plain; charset=utf-8", content_length=False)
    assert _lookup(site.resolver()).policy is not None


@pytest.mark.parametrize(
    ("name", "self_signed", "detail"),
    [
        ("mta-sts.other.test", False, "Hostname mismatch"),
        (POLICY_HOST, True, "self"),
    ],
)
def test_certificates_are_verified_for_the_policy_host(
    site: Site, cert_dir: Path, name: str, self_signed: bool, detail: str
) -> None:
    site.publish("1")
    site.web.context = host_context(cert_dir, name, self_signed=self_signed)
    result = _lookup(site.resolver())
    assert (result.policy, result.failure) == (None, WEBPKI_INVALID)
    assert result.detail is not None and detail in result.detail
    # The server thread counts the failed handshake once the client has hung up.
    wait_until(lambda: site.web.handshake_failures > 0, timeout=10)
    assert site.fetches() == 0 and site.web.handshake_failures == 1


def test_slow_server_times_out(site: Site) -> None:
    site.publish("1", delay=3.0)
    started = time.monotonic()
    result = _lookup(site.resolver(timeout=0.5))
    assert (result.policy, result.failure) == (None, FETCH_ERROR)
    assert result.detail is not None and "timed out" in result.detail
    assert time.monotonic() - started < 2.5


def test_unreachable_or_unresolvable_policy_host(site: Site) -> None:
    site.publish("1")
    site.dns.remove(POLICY_HOST)
    result = _lookup(site.resolver())
    assert (result.policy, result.failure) == (None, FETCH_ERROR)
    assert result.detail is not None and "has no address" in result.detail
    site.dns.add(POLICY_HOST, "A", "127.0.0.1")
    port = site.web.port
    site.web.stop()
    resolver = MtaStsResolver(
        [site.dns.nameserver], site.cache, https_port=port, ca_file=str(site.ca), timeout=2.0
    )
    result = _lookup(resolver)
    assert (result.policy, result.failure) == (None, FETCH_ERROR)
    assert result.detail is not None and "ConnectError" in result.detail


def test_invalid_new_policy_keeps_the_cached_one(site: Site) -> None:
    site.publish("1")

    async def run(resolver: MtaStsResolver) -> tuple[StsLookup, StsLookup]:
        first = await resolver.lookup(DOMAIN)
        site.publish("2", b"version: STSv1\nmode: enforce\n")
        second = await resolver.lookup(DOMAIN)
        await resolver.aclose()
        return first, second

    first, second = asyncio.run(run(site.resolver()))
    assert first.policy is not None and first.policy.id == "1"
    assert second.policy == first.policy
    assert second.failure == POLICY_INVALID
    stored = json.loads((site.cache / f"{DOMAIN}.json").read_text())
    assert stored["id"] == "1"


# -- restart, single flight, reuse --------------------------------------------------------


def test_cache_survives_a_restart(site: Site) -> None:
    site.publish("1")
    first = _lookup(site.resolver())
    site.web.serve(POLICY_PATH, status=500)  # fetching again would fail
    site.dns.fail(TXT_NAME, "TXT")
    after_restart = _lookup(site.resolver())
    assert after_restart.policy == first.policy
    assert after_restart.failure == FETCH_ERROR  # DNS trouble is still reported
    site.dns.servfail_types.clear()
    assert _lookup(site.resolver()) == StsLookup(first.policy)
    assert site.fetches() == 1


def test_damaged_cache_file_is_ignored(site: Site) -> None:
    site.publish("1")
    site.cache.mkdir(mode=0o700)
    (site.cache / f"{DOMAIN}.json").write_text('{"format": 1, "domain": "example.test"')
    result = _lookup(site.resolver())
    assert result.policy is not None and result.failure is None
    assert site.fetches() == 1


def test_expired_cache_file_is_not_used(site: Site) -> None:
    site.publish("1")
    site.cache.mkdir(mode=0o700)
    entry = {
        "format": 1,
        "domain": DOMAIN,
        "id": "1",
        "fetched_at": time.time() - 86401,
        "policy": ENFORCE.decode(),
    }
    (site.cache / f"{DOMAIN}.json").write_text(json.dumps(entry))
    site.web.serve(POLICY_PATH, status=404)
    assert _lookup(site.resolver()).policy is None
    assert site.fetches() == 1


def test_a_thousand_concurrent_lookups_make_one_query_and_one_fetch(site: Site) -> None:
    site.publish("1", delay=0.2)  # all lookups start while the fetch is running

    async def run(resolver: MtaStsResolver) -> list[StsLookup]:
        try:
            return await asyncio.gather(*(resolver.lookup(DOMAIN) for _ in range(1000)))
        finally:
            await resolver.aclose()

    results = asyncio.run(run(site.resolver()))
    assert len(set(results)) == 1 and results[0].policy is not None
    assert site.txt_queries() == 1
    assert site.fetches() == 1


def test_outcome_is_reused_for_a_while(site: Site) -> None:
    site.publish("1")
    results = _lookups(site.resolver(txt_cache_seconds=60.0), 100)
    assert len(set(results)) == 1 and results[0].policy is not None
    assert site.txt_queries() == 1 and site.fetches() == 1


def test_failures_are_reused_too(site: Site) -> None:
    site.publish("1", status=503)
    results = _lookups(site.resolver(txt_cache_seconds=60.0), 20)
    assert all(r.failure == FETCH_ERROR for r in results)
    assert site.txt_queries() == 1 and site.fetches() == 1


def test_cancelled_waiter_does_not_cancel_the_others(site: Site) -> None:
    site.publish("1", delay=0.3)

    async def run(resolver: MtaStsResolver) -> StsLookup:
        first = asyncio.create_task(resolver.lookup(DOMAIN))
        second = asyncio.create_task(resolver.lookup(DOMAIN))
        await asyncio.sleep(0.1)
        first.cancel()
        try:
            return await second
        finally:
            await resolver.aclose()

    result = asyncio.run(run(site.resolver()))
    assert result.policy is not None
    assert site.fetches() == 1


@pytest.mark.parametrize("domain", ["[192.0.2.1]", "../etc", "localhost", "", "a..b"])
def test_names_that_cannot_have_a_policy(site: Site, domain: str) -> None:
    assert _lookup(site.resolver(), domain) == StsLookup(None)
    assert site.dns.queries == [] and not site.cache.exists()


def test_lookup_after_close_is_refused(site: Site) -> None:
    resolver = site.resolver()

    async def run() -> None:
        await resolver.aclose()
        await resolver.lookup(DOMAIN)

    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(run())


def test_cache_files_are_private(site: Site) -> None:
    site.publish("1")
    old = os.umask(0)
    try:
        _lookup(site.resolver())
    finally:
        os.umask(old)
    assert stat.S_IMODE((site.cache / f"{DOMAIN}.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(site.cache.stat().st_mode) == 0o700
