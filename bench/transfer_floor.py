"""The floor under the relay benchmark's latencies: the load generator and TLS alone.

    .venv/bin/python bench/transfer_floor.py              # the mix's size classes, 1 session
    .venv/bin/python bench/transfer_floor.py --json       # results as JSON on stdout

bench/loadgen.py sends the realistic mix's messages of each size class
(bench/mail_mix.py) over STARTTLS to bench/sink.py, which answers every command
at once and keeps nothing. What is left of an accept latency (DATA to its
reply) is the client making and encrypting the message and its octets
crossing loopback TLS into a Python reader: no relay answers faster, so a
relay's latency for that class (`bench/versus_postfix.py --mix --mix-size`)
less this floor is what the relay does with the message. At one session the
mix's throughput is the inverse of its mean latency: this is what bounds it.
It prints, per class, the median and 99th percentile latency and messages
per second. See bench/README.md, "Versus Postfix".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from mail_mix import SIZE_CLASSES_KB  # bench/ is on sys.path
from relay import BenchError, PythonSink, log, percentile, run_loadgen_at

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from certs import make_certs  # tests/certs.py: a test CA on disk

LARGE_KB = max(SIZE_CLASSES_KB)


@dataclass(frozen=True)
class Floor:
    size_kb: int
    messages: int
    p50_ms: float
    p99_ms: float
    per_second: float


def measure(sink: PythonSink, size_kb: int, sessions: int, messages: int) -> Floor:
    """One size class sent to `sink`; every message must have come over TLS."""
    over_tls = sink.tls_count()
    load = run_loadgen_at(
        sink.port,
        sessions,
        messages,
        f"floor{size_kb}",
        600.0,
        None,
        mix=True,
        mix_size=size_kb * 1024,
        starttls=True,
    )
    latencies = [ms for each in load["latencies_by_size"].values() for ms in each]
    if sink.tls_count() - over_tls != len(latencies):
        raise BenchError(f"{size_kb} KB: not every message reached the sink over TLS")
    seconds = load["last_accept"] - load["first_submit"]
    return Floor(
        size_kb,
        len(latencies),
        statistics.median(latencies),
        percentile(latencies, 99),
        load["accepted"] / seconds if seconds > 0 else 0.0,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--messages",
        type=int,
        default=400,
        help=f"Messages per size class (default 400; a quarter of them for {LARGE_KB} KB).",
    )
    parser.add_argument("--sessions", type=int, default=1, help="Concurrent sessions (default 1).")
    parser.add_argument("--json", action="store_true", help="Results as JSON on stdout.")
    args = parser.parse_args(argv)
    if not 4 <= args.messages <= 100_000:
        parser.error("--messages must be 4..100000")
    if not 1 <= args.sessions <= args.messages // 4:
        parser.error("--sessions must be 1..a quarter of --messages")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="phigate-floor-") as tmp:
        made = make_certs(Path(tmp))
        sink = PythonSink(Path(tmp), (made["good"], made["good_key"]))
        sink.start()
        try:
            floors = [
                measure(
                    sink,
                    size_kb,
                    args.sessions,
                    args.messages // 4 if size_kb == LARGE_KB else args.messages,
                )
                for size_kb in SIZE_CLASSES_KB
            ]
        except BenchError as exc:
            log(f"bench: {exc}")
            return 2
        finally:
            sink.stop()
    if args.json:
        print(json.dumps([asdict(floor) for floor in floors], indent=2))
        return 0
    print(f"load generator to bench/sink.py over STARTTLS, {args.sessions} session(s)")
    print("class      messages   p50 ms   p99 ms    msg/s")
    for floor in floors:
        print(
            f"{floor.size_kb:>5} KB {floor.messages:>10} {floor.p50_ms:8.2f} "
            f"{floor.p99_ms:8.2f} {floor.per_second:8.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
