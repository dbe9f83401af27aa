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


def relay_runs(modes: Sequence[bool]) -> list[dict[str, Any]]:
    """One relay.py run per mode (metrics on: True), all at the same time."""
    started = [
        subprocess.Popen(
            [*RELAY, "--json", *(["--metrics"] if metrics else [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for metrics in modes
    ]
    runs = []
    for metrics, proc in zip(modes, started, strict=True):
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"relay.py failed ({proc.returncode}):\n{err[-2000:]}")
        report = json.loads(out)
        assert report["metrics"] is metrics
        runs.append(report["runs"][0])
    return runs


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
    parser.add_argument(
        "--concurrent",
        action="store_true",
        help="Run each round's two runs at the same time, on a machine others load too: "
        "both then meet the same background load.",
    )
    parser.add_argument("--out", type=Path, help="Write every run's relay.py result here (JSON).")
    args = parser.parse_args(argv)
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for round_no in range(args.rounds):
        order = (False, True) if round_no % 2 == 0 else (True, False)
        batches = [order] if args.concurrent else [(metrics,) for metrics in order]
        for batch in batches:
            for metrics, run in zip(batch, relay_runs(batch), strict=True):
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
    paired = [
        (on["phigate_cpu_ms_per_message"] / off["phigate_cpu_ms_per_message"] - 1) * 100
        for off, on in zip(runs[False], runs[True], strict=True)
    ]
    print(
        "CPU per message, on against off in the same round: "
        + " ".join(f"{p:+.1f} %" for p in paired)
        + f"; median {statistics.median(paired):+.1f} %",
        file=sys.stderr,
    )
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
