"""What the metrics cost: `bench/relay.py` with the metrics listener off and on, interleaved.

    .venv/bin/python bench/metrics_overhead.py              # 3 rounds, about 3 minutes
    .venv/bin/python bench/metrics_overhead.py --rounds 5

Each round runs `bench/relay.py --sessions 10 --listeners plain --json` once
without and once with `--metrics` (the order alternates between rounds, so a
machine that speeds up or slows down favours neither), then reports the
medians of accepted/s, delivered/s and phigate's CPU per message, and the
overhead of metrics on each. It also times the metric updates one relayed
message makes, in multiprocess mode as `phigate serve` runs them, without
any mail. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RELAY = [sys.executable, str(BENCH_DIR / "relay.py"), "--sessions", "10", "--listeners", "plain"]
MEASURES = (
    ("accepted/s", "accepted_per_s", True),
    ("delivered/s", "delivered_per_s", True),
    ("CPU ms/msg", "phigate_cpu_ms_per_message", False),
)
MICRO_MESSAGES = 100_000


def relay_run(metrics: bool) -> dict[str, Any]:
    command = [*RELAY, "--json", *(["--metrics"] if metrics else [])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    assert report["metrics"] is metrics
    run: dict[str, Any] = report["runs"][0]
    return run


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="Runs with and without metrics.")
    parser.add_argument("--out", type=Path, help="Write every run's relay.py result here (JSON).")
    args = parser.parse_args(argv)
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for round_no in range(args.rounds):
        order = (False, True) if round_no % 2 == 0 else (True, False)
        for metrics in order:
            run = relay_run(metrics)
            runs[metrics].append(run)
            print(
                f"round {round_no + 1} metrics {'on ' if metrics else 'off'}: "
                + ", ".join(f"{name} {run[key]:.2f}" for name, key, _ in MEASURES)
                + f"; other processes' CPU {run['other_cpu_percent']:.0f} %",
                file=sys.stderr,
                flush=True,
            )
    if args.out is not None:
        args.out.write_text(json.dumps({"off": runs[False], "on": runs[True]}, indent=2))
    print("| measure | metrics off (runs; median) | metrics on (runs; median) | overhead |")
    print("|---|---|---|---:|")
    for name, key, higher_is_better in MEASURES:
        off = [run[key] for run in runs[False]]
        on = [run[key] for run in runs[True]]
        off_median, on_median = statistics.median(off), statistics.median(on)
        change = (on_median - off_median) / off_median * 100
        overhead = -change if higher_is_better else change
        print(
            f"| {name} | {' '.join(f'{v:.1f}' for v in off)}; **{off_median:.1f}** "
            f"| {' '.join(f'{v:.1f}' for v in on)}; **{on_median:.1f}** | {overhead:+.1f} % |"
        )
    micro = per_message_updates_us()
    cpu = statistics.median(run["phigate_cpu_ms_per_message"] for run in runs[False])
    print(
        f"\nMetric updates of one message (multiprocess mode, no mail): {micro:.1f} µs, "
        f"{micro / (cpu * 1000) * 100:.1f} % of phigate's CPU per message with metrics off."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
