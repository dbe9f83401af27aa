"""What a feature costs on the relay: `bench/relay.py` with one flag off and on, interleaved.

Used by bench/metrics_overhead.py (`--metrics`) and bench/archive_write.py
(`--archive`). Each round runs `bench/relay.py --sessions 10 --listeners plain
--json` once without and once with the flag (the order alternates between
rounds, so a machine that speeds up or slows down favours neither); with
`concurrent` a round's two runs go at the same time, so that on a machine other
work loads they meet the same background load. The medians of accepted/s,
delivered/s and phigate's CPU per message are printed as a Markdown table, with
the overhead of the flag on each, and (on stderr) the change of CPU per message
within each round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RELAY = [sys.executable, str(BENCH_DIR / "relay.py"), "--sessions", "10", "--listeners", "plain"]
MEASURES = (  # label, key in relay.py's results, higher is better, decimals
    ("accepted/s", "accepted_per_s", True, 1),
    ("delivered/s", "delivered_per_s", True, 1),
    ("CPU ms/msg", "phigate_cpu_ms_per_message", False, 2),
)
Runs = dict[bool, list[dict[str, Any]]]


def parser(description: str) -> argparse.ArgumentParser:
    """The options every comparison takes: --rounds, --concurrent, --out."""
    options = argparse.ArgumentParser(description=description)
    options.add_argument("--rounds", type=int, default=3, help="Runs with and without the flag.")
    options.add_argument(
        "--concurrent",
        action="store_true",
        help="Run each round's two runs at the same time, on a machine others load too: "
        "both then meet the same background load.",
    )
    options.add_argument("--out", type=Path, help="Write every run's relay.py result here (JSON).")
    return options


def relay_runs(flag: str, modes: Sequence[bool]) -> list[dict[str, Any]]:
    """One relay.py run per mode (`flag` given: True), all at the same time."""
    started = [
        subprocess.Popen(
            [*RELAY, "--json", *([flag] if on else [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for on in modes
    ]
    runs = []
    for on, proc in zip(modes, started, strict=True):
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"relay.py failed ({proc.returncode}):\n{err[-2000:]}")
        report = json.loads(out)
        assert report[flag.removeprefix("--").replace("-", "_")] is on
        runs.append(report["runs"][0])
    return runs


def compare(flag: str, rounds: int, concurrent: bool, out: Path | None) -> Runs:
    """Run the rounds and print the table; every run's relay.py result by mode."""
    name = flag.removeprefix("--")
    runs: Runs = {False: [], True: []}
    for round_no in range(rounds):
        order = (False, True) if round_no % 2 == 0 else (True, False)
        batches = [order] if concurrent else [(on,) for on in order]
        for batch in batches:
            for on, run in zip(batch, relay_runs(flag, batch), strict=True):
                runs[on].append(run)
                print(
                    f"round {round_no + 1} {name} {'on ' if on else 'off'}: "
                    + ", ".join(f"{label} {run[key]:.2f}" for label, key, _, _ in MEASURES)
                    + f"; other processes' CPU {run['other_cpu_percent']:.0f} %",
                    file=sys.stderr,
                    flush=True,
                )
    if out is not None:
        out.write_text(json.dumps({"off": runs[False], "on": runs[True]}, indent=2))
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
    print(f"| measure | {name} off (runs; median) | {name} on (runs; median) | overhead |")
    print("|---|---|---|---:|")
    for label, key, higher_is_better, decimals in MEASURES:
        off = [run[key] for run in runs[False]]
        on = [run[key] for run in runs[True]]
        off_median, on_median = statistics.median(off), statistics.median(on)
        change = (on_median - off_median) / off_median * 100
        overhead = -change if higher_is_better else change
        off_runs = " ".join(f"{v:.{decimals}f}" for v in off)
        on_runs = " ".join(f"{v:.{decimals}f}" for v in on)
        print(
            f"| {label} | {off_runs}; **{off_median:.{decimals}f}** "
            f"| {on_runs}; **{on_median:.{decimals}f}** | {overhead:+.1f} % |"
        )
    return runs
