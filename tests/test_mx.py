"""MX routing against a real DNS server on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from dns_server import LoopbackDns  # tests/ is not a package; pytest puts it on sys.path

from gateway.delivery.mx import MAX_HOPS, Hop, MxResolver, RouteError, parse_nameserver


@pytest.fixture
def dns_server() -> Iterator[LoopbackDns]:
    with LoopbackDns() as server:
        yield server


def _resolver(server: LoopbackDns, timeout: float = 1.0, port: int = 25) -> MxResolver:
    return MxResolver([server.nameserver], port=port, timeout=timeout)


def _hops(server: LoopbackDns, domain: str, port: int = 25) -> list[Hop]:
    return asyncio.run(_resolver(server, port=port).hops(domain))


def _route_error(server: LoopbackDns, domain: str, timeout: float = 1.0) -> RouteError:
    with pytest.raises(RouteError) as info:
        asyncio.run(_resolver(server, timeout=timeout).hops(domain))
    return info.value


# -- MX ordering -------------------------------------------------------------------


def test_hops_sorted_by_preference(dns_server: LoopbackDns) -> None:
    dns_server.add("example.test", "MX", "30 mx3.example.test.")
    dns_server.add("example.test", "MX", "10 mx1.example.test.")
    dns_server.add("example.test", "MX", "20 mx2.example.test.")
    assert _hops(dns_server, "example.test") == [
        Hop("mx1.example.test", 25, 10),
        Hop("mx2.example.test", 25, 20),
        Hop("mx3.example.test", 25, 30),
    ]


def test_equal_preferences_are_shuffled(dns_server: LoopbackDns) -> None:
    for name in ("a", "b", "c"):
        dns_server.add("example.test", "MX", f"10 {name}.example.test.")
    dns_server.add("example.test", "MX", "5 first.example.test.")
    dns_server.add("example.test", "MX", "50 last.example.test.")
    resolver = _resolver(dns_server)

    async def many() -> list[list[Hop]]:
        return [await resolver.hops("example.test") for _ in range(25)]

    orders = set()
    for hops in asyncio.run(many()):
        assert hops[0].host == "first.example.test"
        assert hops[-1].host == "last.example.test"
        middle = hops[1:-1]
        assert {hop.host for hop in middle} == {
            "a.example.test",
            "b.example.test",
            "c.example.test",
        }
        assert {hop.preference for hop in middle} == {10}
        orders.add(tuple(hop.host for hop in middle))
    # 25 draws of 6 permutations all landing on one order: p = 6**-24.
    assert len(orders) > 1


def test_port_and_normalisation(dns_server: LoopbackDns) -> None:
    dns_server.add("example.test", "MX", "10 MX1.Example.TEST.")
    dns_server.add("example.test", "MX", "20 mx1.example.test.")  # duplicate host
    assert _hops(dns_server, "Example.Test.", port=2525) == [Hop("mx1.example.test", 2525, 10)]


def test_hops_are_capped(dns_server: LoopbackDns) -> None:
    for pref in range(15, 0, -1):
        dns_server.add("big.test", "MX", f"{pref} mx{pref}.big.test.")
    hops = _hops(dns_server, "big.test")
    assert len(hops) == MAX_HOPS
    assert [hop.preference for hop in hops] == list(range(1, MAX_HOPS + 1))


def test_large_answer_falls_back_to_tcp(dns_server: LoopbackDns) -> None:
    # Well past the 1232-byte EDNS buffer, so the UDP reply is truncated.
    for i in range(60):
        dns_server.add("large.test", "MX", f"{i} mx-{i:02d}-{'a' * 40}.large.test.")
    hops = _hops(dns_server, "large.test")
    assert len(hops) == MAX_HOPS
    assert hops[0] == Hop(f"mx-00-{'a' * 40}.large.test", 25, 0)
    assert ("large.test", "MX", "tcp") in dns_server.queries


def test_mx_lookup_follows_cname(dns_server: LoopbackDns) -> None:
    dns_server.add("alias.test", "CNAME", "real.test.")
    dns_server.add("real.test", "MX", "10 mx.real.test.")
    assert _hops(dns_server, "alias.test") == [Hop("mx.real.test", 25, 10)]


# -- implicit MX -------------------------------------------------------------------


def test_implicit_mx_from_a_record(dns_server: LoopbackDns) -> None:
    dns_server.add("plain.test", "A", "127.0.0.1")
    assert _hops(dns_server, "plain.test") == [Hop("plain.test", 25, 0)]


def test_implicit_mx_from_aaaa_record(dns_server: LoopbackDns) -> None:
    dns_server.add("six.test", "AAAA", "::1")
    assert _hops(dns_server, "six.test") == [Hop("six.test", 25, 0)]


def test_no_mx_and_no_address_is_permanent(dns_server: LoopbackDns) -> None:
    dns_server.add("textonly.test", "TXT", '"v=spf1 -all"')
    error = _route_error(dns_server, "textonly.test")
    assert error.permanent
    assert "no MX or address records" in error.message


def test_implicit_mx_with_failing_address_lookup_is_temporary(dns_server: LoopbackDns) -> None:
    dns_server.add("flaky.test", "TXT", '"x"')  # MX: no data, so implicit MX applies
    dns_server.fail("flaky.test", "A")
    dns_server.fail("flaky.test", "AAAA")
    error = _route_error(dns_server, "flaky.test")
    assert not error.permanent


def test_implicit_mx_with_one_address_family_failing(dns_server: LoopbackDns) -> None:
    dns_server.add("half.test", "A", "127.0.0.1")
    dns_server.fail("half.test", "AAAA")
    assert _hops(dns_server, "half.test") == [Hop("half.test", 25, 0)]


# -- failures ----------------------------------------------------------------------


def test_null_mx_is_permanent(dns_server: LoopbackDns) -> None:
    dns_server.add("nomail.test", "MX", "0 .")
    dns_server.add("nomail.test", "A", "127.0.0.1")  # must not trigger implicit MX
    error = _route_error(dns_server, "nomail.test")
    assert error.permanent
    assert "does not accept mail (null MX)" in error.message


def test_null_mx_mixed_with_real_hosts_is_skipped(dns_server: LoopbackDns) -> None:
    dns_server.add("mixed.test", "MX", "0 .")
    dns_server.add("mixed.test", "MX", "10 mx.mixed.test.")
    assert _hops(dns_server, "mixed.test") == [Hop("mx.mixed.test", 25, 10)]


def test_unusable_mx_hosts_are_permanent(dns_server: LoopbackDns) -> None:
    dns_server.add("bad.test", "MX", r"10 bad\032host.bad.test.")
    dns_server.add("bad.test", "MX", "20 under_score.bad.test.")
    error = _route_error(dns_server, "bad.test")
    assert error.permanent
    assert "no usable MX host" in error.message


def test_nxdomain_is_permanent(dns_server: LoopbackDns) -> None:
    error = _route_error(dns_server, "missing.test")
    assert error.permanent
    assert "does not exist" in error.message


def test_servfail_is_temporary(dns_server: LoopbackDns) -> None:
    dns_server.add("broken.test", "MX", "10 mx.broken.test.")
    dns_server.fail("broken.test")
    error = _route_error(dns_server, "broken.test")
    assert not error.permanent
    assert "SERVFAIL" in error.message


def test_timeout_is_temporary_and_bounded(dns_server: LoopbackDns) -> None:
    dns_server.ignore("slow.test")
    started = time.monotonic()
    error = _route_error(dns_server, "slow.test", timeout=0.4)
    assert time.monotonic() - started < 1.5
    assert not error.permanent
    assert "timed out" in error.message


def test_unreachable_name_server_is_temporary() -> None:
    # Nothing listens on the discard port on loopback; UDP gets refused or times out.
    resolver = MxResolver(["127.0.0.1:9"], timeout=0.4)
    with pytest.raises(RouteError) as info:
        asyncio.run(resolver.hops("example.test"))
    assert not info.value.permanent


@pytest.mark.parametrize("domain", ["", ".", "bad domain.test", "a..b", "x" * 64 + ".test"])
def test_invalid_domain_is_permanent(dns_server: LoopbackDns, domain: str) -> None:
    error = _route_error(dns_server, domain)
    assert error.permanent
    assert not dns_server.queries  # rejected before any lookup


# -- domain literals -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "host"),
    [("[127.0.0.1]", "127.0.0.1"), ("[IPv6:::1]", "::1"), ("[ipv6:2001:DB8::1]", "2001:db8::1")],
)
def test_domain_literal_routes_directly(dns_server: LoopbackDns, literal: str, host: str) -> None:
    assert _hops(dns_server, literal, port=2525) == [Hop(host, 2525, 0)]
    assert not dns_server.queries


@pytest.mark.parametrize("literal", ["[999.0.0.1]", "[::1]", "[IPv6:127.0.0.1]", "[127.0.0.1"])
def test_bad_domain_literal_is_permanent(dns_server: LoopbackDns, literal: str) -> None:
    assert _route_error(dns_server, literal).permanent


# -- addresses -------------------------------------------------------------------------


def test_addresses_a_then_aaaa(dns_server: LoopbackDns) -> None:
    dns_server.add("mx.example.test", "AAAA", "::1")
    dns_server.add("mx.example.test", "A", "127.0.0.2")
    dns_server.add("mx.example.test", "A", "127.0.0.1")
    found = asyncio.run(_resolver(dns_server).addresses("mx.example.test"))
    assert sorted(found[:2]) == ["127.0.0.1", "127.0.0.2"]
    assert found[2:] == ["::1"]


def test_addresses_of_ip_literal_skip_dns(dns_server: LoopbackDns) -> None:
    resolver = _resolver(dns_server)
    assert asyncio.run(resolver.addresses("127.0.0.1")) == ["127.0.0.1"]
    assert asyncio.run(resolver.addresses("[::1]")) == ["::1"]
    assert not dns_server.queries


def test_addresses_of_unknown_host_is_empty(dns_server: LoopbackDns) -> None:
    assert asyncio.run(_resolver(dns_server).addresses("nothing.example.test")) == []


def test_addresses_servfail_is_temporary(dns_server: LoopbackDns) -> None:
    dns_server.fail("mx.example.test")
    with pytest.raises(RouteError) as info:
        asyncio.run(_resolver(dns_server).addresses("mx.example.test"))
    assert not info.value.permanent


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
    ],
)
def test_parse_nameserver(spec: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(spec) == expected


@pytest.mark.parametrize("spec", ["ns.example.test", "127.0.0.1:0", "127.0.0.1:x", "[::1]x", ""])
def test_parse_nameserver_rejects(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_nameserver(spec)


def test_route_error_attributes() -> None:
    error = RouteError("domain x does not exist", permanent=True)
    assert error.permanent and error.message == "domain x does not exist"
    assert "permanent" in str(error)


# -- answers reused within their TTL -------------------------------------------------


def _cached(server: LoopbackDns, seconds: float = 60.0) -> MxResolver:
    return MxResolver([server.nameserver], timeout=1.0, cache_seconds=seconds)


def _queried(server: LoopbackDns) -> list[tuple[str, str]]:
    return [(name, rdtype) for name, rdtype, _ in server.queries]


def _publish(server: LoopbackDns, soa_minimum: int = 60) -> None:
    server.add(
        "example.test", "SOA", f"ns.example.test. admin.example.test. 1 60 60 60 {soa_minimum}"
    )
    server.add("example.test", "MX", "10 mx.example.test.")
    server.add("mx.example.test", "A", "127.0.0.1")


def test_a_burst_to_one_domain_asks_once_per_record_type(dns_server: LoopbackDns) -> None:
    _publish(dns_server)  # no AAAA: the "no records" answer is kept for the SOA minimum
    resolver = _cached(dns_server)

    async def deliver() -> list[str]:
        hops = await resolver.hops("example.test")
        return await resolver.addresses(hops[0].host)

    async def burst() -> list[list[str]]:
        together = await asyncio.gather(*(deliver() for _ in range(20)))
        return [*together, *[await deliver() for _ in range(20)]]

    assert asyncio.run(burst()) == [["127.0.0.1"]] * 40
    assert sorted(_queried(dns_server)) == [
        ("example.test", "MX"),
        ("mx.example.test", "A"),
        ("mx.example.test", "AAAA"),
    ]


def test_a_changed_record_is_seen_after_its_ttl(dns_server: LoopbackDns) -> None:
    _publish(dns_server)
    dns_server.ttl = 1
    resolver = _cached(dns_server)

    async def change_and_look() -> tuple[list[str], list[str], list[str]]:
        before = await resolver.addresses("mx.example.test")
        dns_server.remove("mx.example.test", "A")
        dns_server.add("mx.example.test", "A", "127.0.0.2")
        within_ttl = await resolver.addresses("mx.example.test")
        await asyncio.sleep(1.2)
        return before, within_ttl, await resolver.addresses("mx.example.test")

    assert asyncio.run(change_and_look()) == (["127.0.0.1"], ["127.0.0.1"], ["127.0.0.2"])


def test_answers_are_kept_no_longer_than_the_configured_seconds(
    dns_server: LoopbackDns,
) -> None:
    _publish(dns_server)  # a TTL of 60 s
    resolver = _cached(dns_server, seconds=0.5)

    async def change_and_look() -> list[Hop]:
        await resolver.hops("example.test")
        dns_server.remove("example.test", "MX")
        dns_server.add("example.test", "MX", "20 mx2.example.test.")
        await asyncio.sleep(0.7)
        return await resolver.hops("example.test")

    assert asyncio.run(change_and_look()) == [Hop("mx2.example.test", 25, 20)]


def test_a_retry_sees_a_change_at_once_and_keeps_it(dns_server: LoopbackDns) -> None:
    _publish(dns_server)
    resolver = _cached(dns_server)

    async def fix_and_retry() -> tuple[list[Hop], list[Hop], list[Hop]]:
        first = await resolver.hops("example.test")
        dns_server.remove("example.test", "MX")
        dns_server.add("example.test", "MX", "20 fixed.example.test.")
        retry = await resolver.hops("example.test", fresh=True)
        return first, retry, await resolver.hops("example.test")

    first, retry, after = asyncio.run(fix_and_retry())
    assert first == [Hop("mx.example.test", 25, 10)]
    assert retry == after == [Hop("fixed.example.test", 25, 20)]


def test_failures_are_not_kept(dns_server: LoopbackDns) -> None:
    _publish(dns_server)
    dns_server.fail("example.test", "MX")
    resolver = _cached(dns_server)

    async def fail_then_recover() -> list[Hop]:
        with pytest.raises(RouteError) as info:
            await resolver.hops("example.test")
        assert not info.value.permanent
        dns_server.servfail_types.clear()
        return await resolver.hops("example.test")

    assert asyncio.run(fail_then_recover()) == [Hop("mx.example.test", 25, 10)]


def test_a_missing_domain_is_kept_for_the_soa_minimum_only(dns_server: LoopbackDns) -> None:
    _publish(dns_server, soa_minimum=1)
    resolver = _cached(dns_server)

    async def look_create_look() -> list[Hop]:
        for _ in range(2):
            with pytest.raises(RouteError) as info:
                await resolver.hops("new.example.test")
            assert info.value.permanent  # NXDOMAIN, the second time from the cache
        dns_server.add("new.example.test", "MX", "10 mx.example.test.")
        await asyncio.sleep(1.2)
        return await resolver.hops("new.example.test")

    assert asyncio.run(look_create_look()) == [Hop("mx.example.test", 25, 10)]
    assert _queried(dns_server).count(("new.example.test", "MX")) == 2


def test_no_cache_asks_every_time(dns_server: LoopbackDns) -> None:
    _publish(dns_server)
    resolver = _cached(dns_server, seconds=0)

    async def twice() -> None:
        for _ in range(2):
            await resolver.hops("example.test")

    asyncio.run(twice())
    assert _queried(dns_server) == [("example.test", "MX")] * 2
