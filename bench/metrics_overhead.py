"""What the metrics cost: `bench/relay.py` with the metrics listener off and on, interleaved.

    .venv/bin/python bench/metrics_overhead.py              # 3 rounds, about 3 minutes
    .venv/bin/python bench/metrics_overhead.py --rounds 5

Each round runs `bench/relay.py --sessions 10 --listeners plain --json` once
without and once with `--metrics` (the order alternates between rounds, so a
machine that speeds up or slows down favours neither), then reports the
medians of accepted/s, delivered/s and phigate's CPU per message, and the
overhead of metrics on each, and (on stderr) the change of CPU per message
within each round. With `--concurrent` a round's two runs go at the same time,
so that on a machine other work loads they meet the same background load. It
also times the metric updates one relayed message makes, in multiprocess mode
as `phigate serve` runs them, without any mail. See bench/README.md.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from overhead import compare, parser

MICRO_MESSAGES = 100_000


def per_message_updates_us() -> float:
    """Microseconds for the metric updates of one message on the plain relay path."""
    from gateway import metrics

    with tempfile.TemporaryDirectory() as directory:
        metrics.configure(Path(directory))
        started = time.perf_counter()
        for _ in range(MICRO_MESSAGES):
            metrics.DECISIONS.labels("no-phi-standard-delivery", "deliver").inc()
            metrics.INTAKE_SECONDS.observe(0.004)
            metrics.ACCEPTED.labels("plain").inc()
            metrics.TLS_SESSIONS.labels("none").inc()
            metrics.DELIVERIES.labels("standard", "delivered").inc()
            metrics.DELIVERY_SECONDS.labels("standard").observe(0.02)
            metrics.ATTEMPT_SECONDS.observe(0.01)
        return (time.perf_counter() - started) / MICRO_MESSAGES * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(__doc__.split("\n")[0]).parse_args(argv)
    runs = compare("--metrics", args.rounds, args.concurrent, args.out)
    micro = per_message_updates_us()
    cpu = statistics.median(run["phigate_cpu_ms_per_message"] for run in runs[False])
    print(
        f"\nMetric updates of one message (multiprocess mode, no mail): {micro:.1f} µs, "
        f"{micro / (cpu * 1000) * 100:.1f} % of phigate's CPU per message with metrics off."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
