"""MTA-STS benchmark: what a burst of messages to one domain costs in DNS and HTTPS.

    .venv/bin/python bench/mtasts.py            # about 5 s
    .venv/bin/python bench/mtasts.py --json     # the figures as one JSON object

Everything runs on 127.0.0.1: the loopback DNS server of the tests publishes
``_mta-sts.bench.test`` and ``mta-sts.bench.test``, and the tests' HTTPS server
serves the policy with a certificate from a test CA. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from certs import host_context, make_certs
from dns_server import LoopbackDns
from https_server import HttpsServer

from gateway.delivery.mtasts import POLICY_PATH, MtaStsResolver

DOMAIN = "bench.test"
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: *.bench.test\r\nmax_age: 604800\r\n"
BURST = 1000
CACHED_RUNS = 100_000
DNS_RUNS = 1000


class Counters:
    def __init__(self, dns: LoopbackDns, web: HttpsServer) -> None:
        self.dns, self.web = dns, web
        self._dns_start, self._web_start = 0, 0

    def reset(self) -> None:
        self._dns_start, self._web_start = len(self.dns.queries), self.web.count()

    def read(self) -> dict[str, int]:
        queries = self.dns.queries[self._dns_start :]
        return {
            "txt_queries": sum(1 for _, rdtype, _ in queries if rdtype == "TXT"),
            "dns_queries": len(queries),
            "policy_fetches": self.web.count() - self._web_start,
        }


async def _timed(counters: Counters, run: Callable[[], Any]) -> dict[str, Any]:
    counters.reset()
    started = time.perf_counter()
    await run()
    return {"ms": round((time.perf_counter() - started) * 1000, 2), **counters.read()}


async def _per_call_us(resolver: MtaStsResolver, runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        await resolver.lookup(DOMAIN)
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    return {
        "runs": runs,
        "median_us": round(statistics.median(samples), 2),
        "p99_us": round(samples[int(len(samples) * 0.99)], 2),
    }


async def _measure(dns: LoopbackDns, web: HttpsServer, ca: Path, work: Path) -> dict[str, Any]:
    counters = Counters(dns, web)

    def resolver(cache: str, txt_cache_seconds: float = 60.0) -> MtaStsResolver:
        return MtaStsResolver(
            [dns.nameserver],
            work / cache,
            https_port=web.port,
            ca_file=str(ca),
            txt_cache_seconds=txt_cache_seconds,
        )

    results: dict[str, Any] = {}
    # Warm-up on a cache of its own: imports, the TLS context, the first connections.
    warm = resolver("warm-up")
    await warm.lookup(DOMAIN)
    await warm.aclose()

    burst = resolver("cache")

    async def many() -> None:
        answers = await asyncio.gather(*(burst.lookup(DOMAIN) for _ in range(BURST)))
        if any(a.policy is None for a in answers):
            raise SystemExit("a lookup found no policy: the benchmark setup is broken")

    results["burst"] = {"lookups": BURST, **await _timed(counters, many)}
    counters.reset()
    results["cached"] = {**await _per_call_us(burst, CACHED_RUNS), **counters.read()}
    await burst.aclose()

    restarted = resolver("cache")
    results["restart"] = await _timed(counters, lambda: restarted.lookup(DOMAIN))
    await restarted.aclose()

    # Without reusing outcomes every lookup asks DNS (the policy stays cached).
    checking = resolver("cache", txt_cache_seconds=0.0)
    await checking.lookup(DOMAIN)
    counters.reset()
    results["dns_every_time"] = {**await _per_call_us(checking, DNS_RUNS), **counters.read()}
    await checking.aclose()
    return results


def _print(results: dict[str, Any]) -> None:
    burst, cached, restart, dns = (
        results[k] for k in ("burst", "cached", "restart", "dns_every_time")
    )
    print(f"MTA-STS lookups for one domain ({DOMAIN}), all on 127.0.0.1")
    print(
        f"  burst of {burst['lookups']} concurrent lookups, empty cache: "
        f"{burst['policy_fetches']} policy fetch(es), {burst['txt_queries']} TXT "
        f"quer{'y' if burst['txt_queries'] == 1 else 'ies'}, {burst['dns_queries']} DNS "
        f"queries in all, {burst['ms']} ms"
    )
    print(
        f"  cached lookup: median {cached['median_us']} µs, p99 {cached['p99_us']} µs "
        f"over {cached['runs']} lookups ({cached['dns_queries']} DNS queries, "
        f"{cached['policy_fetches']} fetches)"
    )
    print(
        f"  after a restart (policy from disk): {restart['txt_queries']} TXT query, "
        f"{restart['policy_fetches']} fetches, {restart['ms']} ms"
    )
    print(
        f"  with txt_cache_seconds=0 (a TXT query per lookup): median {dns['median_us']} µs, "
        f"p99 {dns['p99_us']} µs over {dns['runs']} lookups ({dns['txt_queries']} TXT queries)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="phigate-mtasts-") as tmp:
        work = Path(tmp)
        make_certs(work)
        with (
            LoopbackDns() as dns,
            HttpsServer(host_context(work, f"mta-sts.{DOMAIN}")) as web,
        ):
            dns.add(f"_mta-sts.{DOMAIN}", "TXT", '"v=STSv1; id=bench1;"')
            dns.add(f"mta-sts.{DOMAIN}", "A", "127.0.0.1")
            web.serve(POLICY_PATH, POLICY)
            results = asyncio.run(_measure(dns, web, work / "ca.crt", work))
    if args.json:
        print(json.dumps(results))
    else:
        _print(results)


if __name__ == "__main__":
    main()
