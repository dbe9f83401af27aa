"""Memory benchmark: phigate's RSS and PSS per process, idle, under load and with large messages.

    .venv/bin/python bench/memory.py            # about two minutes
    .venv/bin/python bench/memory.py --json     # the results as JSON on stdout

It starts bench/relay.py's phigate (`processes: 2` by default, SQLite, smarthost
to a sink on 127.0.0.1) and reports, for the supervisor and each server
process, resident memory (VmRSS) and proportional memory (Pss of
/proc/PID/smaps_rollup, shared pages divided among their sharers), in four
phases: idle after start-up; the peak while 10 sessions send 5 KB messages;
the peak while 50 sessions each send one 10 MB message at once; idle again.
Every load goes to the STARTTLS+AUTH listener, and every message must be
accepted and delivered (the checks of bench/relay.py); otherwise the exit
status is 1 (2 if the benchmark could not be set up). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from relay import (  # bench/ is on sys.path
    RSS_EVERY,
    BenchError,
    Phigate,
    RunSpec,
    Sampler,
    Sink,
    _terminate,
    log,
    make_sink,
    proc_status_kb,
    run_one,
    stop_all,
)

MB = 1024 * 1024
SETTLE_SECONDS = 3.0  # after start-up or a load, before an idle reading
TARGET_LOAD_RSS_MB = 300  # the server processes together, under load
TARGET_LARGE_RSS_MB = 1024  # the whole tree, with the large messages


@dataclass
class Reading:
    """Memory of one process in one phase (MB); a peak for a load phase."""

    phase: str
    process: str  # supervisor | server PID
    rss_mb: float
    pss_mb: float


@dataclass
class Load:
    phase: str
    sessions: int
    message_bytes: int
    sent: int
    accepted: int
    delivered: int
    ok: bool  # every message accepted and delivered once, the queue empty
    sum_peak_rss_mb: float  # the peak of the tree's summed RSS (samples and VmHWM)
    sum_peak_pss_mb: float


def role(pid: int, supervisor: int) -> str:
    return "supervisor" if pid == supervisor else f"server {pid}"


def idle(phase: str, gate: Phigate) -> list[Reading]:
    time.sleep(SETTLE_SECONDS)
    return [
        Reading(
            phase,
            role(pid, gate.pid),
            proc_status_kb(pid, "VmRSS") / 1024,
            proc_status_kb(pid, "Pss", "smaps_rollup") / 1024,
        )
        for pid in gate.tree()
    ]


def loaded(
    phase: str, spec: RunSpec, gate: Phigate, sink: Sink, sampler: Sampler, index: int, limit: float
) -> tuple[Load, list[Reading]]:
    """Run `spec` (run number `index`, `limit` seconds at most); the load and each peak."""
    result = run_one(spec, gate, sink, sampler, index, limit)
    peaks = sampler.process_peaks_kb()
    readings = [
        Reading(phase, role(pid, gate.pid), rss / 1024, pss / 1024)
        for pid, (rss, pss) in peaks.items()
    ]
    load = Load(
        phase=phase,
        sessions=spec.sessions,
        message_bytes=spec.size or 0,
        sent=result.sent,
        accepted=result.accepted,
        delivered=result.delivered,
        ok=result.ok and result.accepted == spec.messages,
        sum_peak_rss_mb=result.peak_rss_mb,
        sum_peak_pss_mb=sampler.peak_pss_kb() / 1024,
    )
    return load, readings


def format_readings(readings: Sequence[Reading]) -> str:
    lines = [f"{'phase':<28} {'process':<14} {'RSS MB':>8} {'PSS MB':>8}"]
    phases = list(dict.fromkeys(r.phase for r in readings))
    for phase in phases:
        rows = [r for r in readings if r.phase == phase]
        for r in rows:
            lines.append(f"{phase:<28} {r.process:<14} {r.rss_mb:8.0f} {r.pss_mb:8.0f}")
        servers = [r for r in rows if r.process != "supervisor"]
        lines.append(
            f"{phase:<28} {'servers':<14} {sum(r.rss_mb for r in servers):8.0f} "
            f"{sum(r.pss_mb for r in servers):8.0f}"
        )
        lines.append(
            f"{phase:<28} {'all':<14} {sum(r.rss_mb for r in rows):8.0f} "
            f"{sum(r.pss_mb for r in rows):8.0f}"
        )
    return "\n".join(lines)


def target_lines(readings: Sequence[Reading], loads: Sequence[Load]) -> list[str]:
    lines = []
    under_load = [r for r in readings if r.phase == "5 KB load" and r.process != "supervisor"]
    if under_load:
        rss = sum(r.rss_mb for r in under_load)
        pss = sum(r.pss_mb for r in under_load)
        met = "met" if rss <= TARGET_LOAD_RSS_MB else "NOT met"
        lines.append(
            f"target: server processes under load <= {TARGET_LOAD_RSS_MB} MB RSS: "
            f"{rss:.0f} MB RSS (sum of per-process peaks), {pss:.0f} MB PSS: {met}"
        )
    for load in loads:
        if load.phase == "10 MB messages":
            met = "met" if load.sum_peak_rss_mb < TARGET_LARGE_RSS_MB else "NOT met"
            lines.append(
                f"target: peak RSS with {load.sessions} concurrent "
                f"{load.message_bytes / MB:.0f} MB messages < {TARGET_LARGE_RSS_MB} MB: "
                f"{load.sum_peak_rss_mb:.0f} MB (PSS {load.sum_peak_pss_mb:.0f} MB): {met}"
            )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="phigate's `processes` (1..64).")
    parser.add_argument(
        "--messages", type=int, default=2000, help="5 KB messages in the load phase."
    )
    parser.add_argument("--sessions", type=int, default=10, help="Sessions in the load phase.")
    parser.add_argument(
        "--large-sessions", type=int, default=50, help="Concurrent large messages (one each)."
    )
    parser.add_argument(
        "--large-size", type=int, default=10 * MB, help="Bytes per large message (10 MB)."
    )
    parser.add_argument("--sink", choices=("auto", "smtp-sink", "python"), default="auto")
    parser.add_argument("--time-limit", type=float, default=300.0, help="Per load, seconds.")
    parser.add_argument("--keep", action="store_true", help="Keep the work directory.")
    parser.add_argument("--json", action="store_true", help="Results as JSON on stdout.")
    args = parser.parse_args(argv)
    if not 1 <= args.processes <= 64:
        parser.error("--processes must be 1..64")
    if not 1 <= args.sessions <= 1000 or not 1 <= args.large_sessions <= 1000:
        parser.error("--sessions and --large-sessions must be 1..1000")
    if not 1 <= args.messages <= 1_000_000 or not 1024 <= args.large_size <= 100 * MB:
        parser.error("--messages must be 1..1000000 and --large-size 1024..104857600")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="phigate-memory-"))
    sink: Sink | None = None
    gate: Phigate | None = None
    sampler: Sampler | None = None
    readings: list[Reading] = []
    loads: list[Load] = []
    exit_code = 0
    try:
        sink = make_sink(args.sink, workdir)
        sink.start()
        gate = Phigate(workdir, sink.port, "info", None, args.processes)
        gate.prepare()
        gate.start()
        log(f"phigate pid {gate.pid}, processes {gate.tree()}; work dir {workdir}")
        readings += idle("idle after start-up", gate)
        # Memory is what this benchmark measures: PSS as often as RSS.
        sampler = Sampler(sink, [gate.pid], pss=True, pss_every=RSS_EVERY)
        sampler.start()
        warm_up = RunSpec("starttls", min(5, args.sessions), 20, report=False)
        runs = [
            ("5 KB load", RunSpec("starttls", args.sessions, args.messages)),
            (
                "10 MB messages",
                RunSpec("starttls", args.large_sessions, args.large_sessions, size=args.large_size),
            ),
        ]
        run_one(warm_up, gate, sink, sampler, 0, args.time_limit)
        for index, (phase, spec) in enumerate(runs, start=1):
            log(f"{phase}: {spec.sessions} sessions, {spec.messages} messages")
            load, peaks = loaded(phase, spec, gate, sink, sampler, index, args.time_limit)
            log(
                f"  accepted {load.accepted}/{load.sent}, delivered {load.delivered}; "
                f"peak RSS {load.sum_peak_rss_mb:.0f} MB" + ("" if load.ok else "  <- PROBLEM")
            )
            loads.append(load)
            readings += peaks
            if not load.ok:
                exit_code = 1
        readings += idle("idle after the loads", gate)
    except BenchError as exc:
        log(f"bench: {exc}")
        return 2
    finally:
        stopped = stop_all(sampler, gate, sink)
        if gate is not None and stopped not in (None, 0):
            log(f"bench: phigate exit status {stopped}:\n{gate.log_tail()}")
            exit_code = exit_code or 1
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    out = sys.stderr if args.json else sys.stdout
    print(format_readings(readings), file=out)
    for line in target_lines(readings, loads):
        print(line, file=out)
    if args.json:
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "processes": args.processes,
            "readings": [asdict(r) for r in readings],
            "loads": [asdict(load) for load in loads],
            "ok": exit_code == 0,
        }
        print(json.dumps(report, indent=2))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
