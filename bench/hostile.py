"""Hostile-load benchmark: a legitimate sender's throughput with and without hostile clients.

    .venv/bin/python bench/hostile.py            # about three minutes
    .venv/bin/python bench/hostile.py --quick    # smoke run, about a minute

phigate runs as bench/relay.py runs it (smarthost to a sink, all on
127.0.0.1), with its web app (portal, reviewer, consent API) over HTTPS and
its default limits. A legitimate sender (bench/loadgen.py: 10 sessions,
5 KB messages, STARTTLS+AUTH, persistent sessions, from 127.0.0.1) runs four
times, A-B-B-A so that a linear drift of the machine cancels:

    A  normal:  the sender alone;
    B  hostile: the same while bench/hostile_clients.py holds 200 idle and 200
                slowloris connections on the SMTP listener and 200 slowloris
                connections on the web app (from other loopback addresses),
                and one client repeats failing AUTH in a loop.

It prints each run's figures (relay.py's: delivered/s, accepted/s, p50, p99,
phigate's CPU), the ratio of the hostile runs' mean to the normal runs'
(target: at least 0.80), how many hostile connections were held open and how
each ended, and the audit events phigate wrote about the hostile clients.
Exit status 1 if a run lost (or duplicated) a message, 2 if the benchmark
could not be set up. See bench/README.md, "Under hostile load".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import mean
from typing import Any

from relay import (  # bench/ is on sys.path
    BENCH_DIR,
    PRINCIPAL,
    BenchError,
    Phigate,
    RunResult,
    RunSpec,
    Sampler,
    Sink,
    TreeCpu,
    calibrate,
    log,
    make_sink,
    run_one,
    stop_all,
    stop_process,
)

PHASES = ("normal", "hostile", "hostile", "normal")  # A-B-B-A
TARGET_RATIO = 0.80
DEFAULT_MESSAGES = 2000
QUICK_MESSAGES = 400
READY_TIMEOUT = 120.0  # for the hostile clients to make their first connections
# Addresses bench/hostile_clients.py connects from (its source_address and failing-AUTH client).
HOSTILE_ADDRESSES = "client_ip LIKE '127.0.1.%' OR client_ip = '127.0.2.1'"


@dataclass(frozen=True)
class HostileLoad:
    smtp_idle: int
    smtp_slow: int
    web_slow: int
    auth: bool
    addresses: int
    dribble: float


class HostileClients:
    """bench/hostile_clients.py in its own process, against one phigate."""

    def __init__(self, gate: Phigate, load: HostileLoad) -> None:
        command = [
            sys.executable,
            str(BENCH_DIR / "hostile_clients.py"),
            "--smtp-port",
            str(gate.tls_port),
            "--smtp-idle",
            str(load.smtp_idle),
            "--smtp-slow",
            str(load.smtp_slow),
            "--web-port",
            str(gate.web_port),
            "--web-slow",
            str(load.web_slow),
            "--addresses",
            str(load.addresses),
            "--dribble",
            str(load.dribble),
        ]
        if load.auth:
            command += ["--auth-port", str(gate.tls_port), "--auth-user", PRINCIPAL]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.started = time.monotonic()

    def wait_ready(self) -> None:
        """Wait until every hostile client has made its first connection."""
        assert self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], READY_TIMEOUT)
        line = self.proc.stdout.readline() if readable else b""
        if line.strip() != b"ready":
            self.stop()
            raise BenchError(f"hostile clients not ready after {READY_TIMEOUT:.0f} s")

    def stop(self) -> dict[str, Any]:
        """Close every hostile connection; what the clients saw."""
        stop_process(self.proc, signal.SIGTERM, 90.0)
        out, err = self.proc.communicate()
        try:
            report: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
        except (IndexError, ValueError) as exc:
            raise BenchError(f"hostile clients reported nothing: {err.decode()[-800:]}") from exc
        report["seconds"] = time.monotonic() - self.started
        return report


def hostile_audit(gate: Phigate, since: float) -> dict[str, int]:
    """Audit events about the hostile clients' addresses since `since` (Unix time), by kind."""
    uri = f"{(gate.workdir / 'data' / 'phigate.db').as_uri()}?mode=ro"
    query = (
        "SELECT event, result, coalesce(code, ''), count(*) FROM audit_events "
        f"WHERE ts >= ? AND ({HOSTILE_ADDRESSES}) GROUP BY 1, 2, 3 ORDER BY 4 DESC"
    )
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        rows = db.execute(query, (since,)).fetchall()
    return {f"{event} {result} {code}".strip(): int(n) for event, result, code, n in rows}


@dataclass(frozen=True)
class IdleCost:
    """phigate's CPU with no sender, without and then with the hostile clients."""

    seconds: float
    quiet_cpu_percent: float
    hostile_cpu_percent: float
    hostile: dict[str, Any]  # what the hostile clients saw


def phigate_cpu_percent(gate: Phigate, seconds: float) -> float:
    """phigate's CPU (its whole process tree) over the next `seconds`, in % of one core."""
    before, start = TreeCpu.read(gate.pid).total, time.monotonic()
    time.sleep(seconds)
    return 100.0 * (TreeCpu.read(gate.pid).total - before) / (time.monotonic() - start)


def idle_cost(gate: Phigate, load: HostileLoad, seconds: float) -> IdleCost:
    """What the hostile load alone costs phigate: no sender, so nothing else to see."""
    quiet = phigate_cpu_percent(gate, seconds)
    clients = HostileClients(gate, load)
    try:
        clients.wait_ready()
        hostile = phigate_cpu_percent(gate, seconds)
    finally:
        report = clients.stop()
    return IdleCost(seconds, quiet, hostile, report)


@dataclass
class Run:
    phase: str
    result: RunResult
    hostile: dict[str, Any] | None = None  # what the hostile clients saw
    audit: dict[str, int] | None = None  # what phigate audited about them


def measure(
    phase: str,
    gate: Phigate,
    sink: Sink,
    sampler: Sampler,
    args: argparse.Namespace,
    load: HostileLoad,
    index: int,
) -> Run:
    spec = RunSpec("starttls", args.sessions, args.messages)
    if phase == "normal":
        return Run(phase, run_one(spec, gate, sink, sampler, index, args.time_limit))
    since = time.time()
    clients = HostileClients(gate, load)
    try:
        clients.wait_ready()
        time.sleep(args.settle)  # let the handshakes of the ramp finish before the clock starts
        result = run_one(spec, gate, sink, sampler, index, args.time_limit)
    finally:
        report = clients.stop()
    return Run(phase, result, report, hostile_audit(gate, since))


# --- report ------------------------------------------------------------------------


def format_runs(runs: Sequence[Run]) -> str:
    header = ("run", "load", "accepted/s", "delivered/s", "p50 ms", "p99 ms", "CPU %", "other %")
    rows = [header]
    for number, run in enumerate(runs, 1):
        r = run.result
        rows.append(
            (
                str(number),
                run.phase,
                f"{r.accepted_per_s:.0f}",
                f"{r.delivered_per_s:.0f}",
                f"{r.p50_ms:.1f}",
                f"{r.p99_ms:.1f}",
                f"{r.phigate_cpu_percent:.0f}",
                f"{r.other_cpu_percent:.0f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(widths[i]) if i > 1 else cell.ljust(widths[i]) for i, cell in enumerate(row)
        )
        for row in rows
    )


@dataclass(frozen=True)
class Ratios:
    normal_delivered: float
    hostile_delivered: float
    normal_accepted: float
    hostile_accepted: float

    @property
    def delivered(self) -> float:
        return self.hostile_delivered / self.normal_delivered if self.normal_delivered else 0.0

    @property
    def accepted(self) -> float:
        return self.hostile_accepted / self.normal_accepted if self.normal_accepted else 0.0


def ratios(runs: Sequence[Run]) -> Ratios:
    def mean_of(phase: str, figure: str) -> float:
        values = [float(getattr(r.result, figure)) for r in runs if r.phase == phase]
        return mean(values) if values else 0.0

    return Ratios(
        mean_of("normal", "delivered_per_s"),
        mean_of("hostile", "delivered_per_s"),
        mean_of("normal", "accepted_per_s"),
        mean_of("hostile", "accepted_per_s"),
    )


def hostile_lines(
    label: str, report: dict[str, Any], audit: dict[str, int] | None = None
) -> Iterator[str]:
    """What the hostile clients saw, and what phigate audited about them."""
    cpu = 100.0 * float(report.get("cpu_seconds", 0.0)) / max(report.get("seconds", 1.0), 1e-9)
    yield f"{label}: hostile clients' own CPU {cpu:.0f}% of a core"
    for kind in ("smtp-idle", "smtp-slowloris", "web-slowloris"):
        stats = report.get(kind)
        if not stats:
            continue
        ended = ", ".join(f"{what} x{n}" for what, n in stats["outcomes"].items())
        held = stats["held_seconds_median"]
        held_note = f"; closed by the server after {held:.1f} s (median)" if held else ""
        yield (
            f"  {kind}: {stats['target']} wanted, {stats['open_min']}-{stats['open_max']} "
            f"held open during the run, {stats['connects']} connections made{held_note}; "
            f"ended: {ended or '-'}"
        )
    auth = report.get("auth")
    if auth:
        replies = ", ".join(f"{code} x{n}" for code, n in sorted(auth["replies"].items()))
        rate = auth["attempts"] / max(report.get("seconds", 1.0), 1e-9)
        median = auth["reply_ms_median"]
        yield (
            f"  failing AUTH: {auth['attempts']} attempts ({rate:.0f}/s) in {auth['sessions']} "
            f"sessions; replies {replies or '-'}; reply median "
            f"{median if median is None else f'{median:.1f}'} ms"
            + (f"; setup failures {auth['setup_failures']}" if auth["setup_failures"] else "")
        )
    if audit is not None:
        audited = ", ".join(f"{kind} x{n}" for kind, n in audit.items())
        yield f"  phigate audited about them: {audited or 'nothing'}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10, help="Legitimate sessions (10).")
    parser.add_argument(
        "--messages",
        type=int,
        default=None,
        help=f"Messages per run (default {DEFAULT_MESSAGES}; --quick {QUICK_MESSAGES}).",
    )
    parser.add_argument("--quick", action="store_true", help="Smoke run.")
    parser.add_argument("--rounds", type=int, default=1, help="A-B-B-A rounds (default 1).")
    parser.add_argument("--smtp-idle", type=int, default=200, help="Idle SMTP connections.")
    parser.add_argument("--smtp-slow", type=int, default=200, help="Slowloris SMTP connections.")
    parser.add_argument("--web-slow", type=int, default=200, help="Slowloris web connections.")
    parser.add_argument("--no-auth", action="store_true", help="Leave out the failing-AUTH client.")
    parser.add_argument(
        "--addresses",
        type=int,
        default=10,
        help="Loopback addresses the hostile connections come from, round robin (default 10).",
    )
    parser.add_argument(
        "--dribble", type=float, default=2.0, help="Seconds between slowloris bytes (2)."
    )
    parser.add_argument(
        "--settle", type=float, default=2.0, help="Seconds between the ramp and the run (2)."
    )
    parser.add_argument(
        "--alone",
        type=float,
        default=20.0,
        help="Seconds to measure phigate's CPU with the hostile clients and no sender, "
        "after as long with neither (20; 0: skip).",
    )
    parser.add_argument("--processes", type=int, default=1, help="phigate's `processes` (1).")
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Set one of phigate's `limits` (repeatable), e.g. --limit idle_timeout=30.",
    )
    parser.add_argument("--sink", choices=("auto", "smtp-sink", "python"), default="auto")
    parser.add_argument("--time-limit", type=float, default=300.0, help="Seconds per run.")
    parser.add_argument("--json", action="store_true", help="Results as JSON on stdout.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    args = parser.parse_args(argv)
    args.messages = args.messages or (QUICK_MESSAGES if args.quick else DEFAULT_MESSAGES)
    if not 1 <= args.sessions <= 500 or not 1 <= args.messages <= 1_000_000:
        parser.error("--sessions must be 1..500 and --messages 1..1000000")
    if not 1 <= args.rounds <= 20 or not 1 <= args.processes <= 64:
        parser.error("--rounds must be 1..20 and --processes 1..64")
    if not 0 <= args.settle <= 60 or not 1.0 <= args.time_limit <= 3600.0:
        parser.error("--settle must be 0..60 s and --time-limit 1..3600 s")
    if not 0 <= args.alone <= 600:
        parser.error("--alone must be 0..600 s")
    args.limits = {}
    for item in args.limit:
        name, _, value = item.partition("=")
        if not value:
            parser.error(f"--limit {item}: give NAME=VALUE")
        args.limits[name.strip()] = yaml_scalar(value)
    return args


def yaml_scalar(text: str) -> Any:
    """A number where it reads as one, else the text (phigate's settings check the rest)."""
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    load = HostileLoad(
        args.smtp_idle,
        args.smtp_slow,
        args.web_slow,
        not args.no_auth,
        args.addresses,
        args.dribble,
    )
    yardstick_before = calibrate()
    workdir = Path(tempfile.mkdtemp(prefix="phigate-hostile-"))
    runs: list[Run] = []
    cost: IdleCost | None = None
    exit_code = 0
    sink: Sink | None = None
    gate: Phigate | None = None
    sampler: Sampler | None = None
    try:
        sink = make_sink(args.sink, workdir)
        sink.start()
        gate = Phigate(
            workdir, sink.port, "info", None, args.processes, web_tls=True, limits=args.limits
        )
        gate.prepare()
        gate.start()
        log(
            f"phigate pid {gate.pid}: submission 127.0.0.1:{gate.tls_port}, web app "
            f"https://127.0.0.1:{gate.web_port}; sink {sink.kind}; work dir {workdir}"
        )
        sampler = Sampler(sink, [gate.pid])
        sampler.start()
        warm_up = RunSpec("starttls", min(5, args.sessions), 20, report=False)
        run_one(warm_up, gate, sink, sampler, 0, args.time_limit)
        if args.alone:
            log(f"phigate's CPU for {args.alone:.0f} s without, then with, the hostile clients")
            cost = idle_cost(gate, load, args.alone)
        for index, phase in enumerate(PHASES * args.rounds, 1):
            if not gate.alive():
                raise BenchError(f"phigate is no longer running:\n{gate.log_tail()}")
            log(f"run {index}: {phase}, {args.sessions} sessions, {args.messages} messages")
            run = measure(phase, gate, sink, sampler, args, load, index)
            runs.append(run)
            r = run.result
            log(
                f"  delivered {r.delivered_per_s:.0f}/s, accepted {r.accepted_per_s:.0f}/s, "
                f"p99 {r.p99_ms:.1f} ms" + ("" if r.ok else "  <- PROBLEM: messages lost")
            )
            if not r.ok:
                exit_code = 1
    except BenchError as exc:
        log(f"bench: {exc}")
        return 2
    finally:
        stopped = stop_all(sampler, gate, sink)
        if stopped not in (None, 0):
            exit_code = exit_code or 1
            log(f"bench: phigate exit status {stopped} (0 expected after SIGTERM)")
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    out = sys.stderr if args.json else sys.stdout
    found = ratios(runs)
    print(format_runs(runs), file=out)
    print(
        f"normal: delivered {found.normal_delivered:.0f}/s, accepted {found.normal_accepted:.0f}/s;"
        f" hostile: delivered {found.hostile_delivered:.0f}/s, accepted "
        f"{found.hostile_accepted:.0f}/s (means)",
        file=out,
    )
    verdict = "met" if found.delivered >= TARGET_RATIO else "MISSED"
    print(
        f"ratio hostile/normal: delivered/s {found.delivered:.2f} ({verdict}: >= {TARGET_RATIO}),"
        f" accepted/s {found.accepted:.2f}; machine yardstick {yardstick_before:.0f}/"
        f"{calibrate():.0f} ms (before/after)",
        file=out,
    )
    if cost is not None:
        print(
            f"phigate's CPU with no sender: {cost.quiet_cpu_percent:.1f}% of a core alone, "
            f"{cost.hostile_cpu_percent:.1f}% with the hostile clients ({cost.seconds:.0f} s each)",
            file=out,
        )
        for line in hostile_lines("with no sender", cost.hostile):
            print(line, file=out)
    for number, run in enumerate(runs, 1):
        if run.hostile is not None:
            for line in hostile_lines(f"run {number}", run.hostile, run.audit):
                print(line, file=out)
    if args.json:
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "load": asdict(load),
            "limits": args.limits,
            "ratio_delivered": found.delivered,
            "ratio_accepted": found.accepted,
            "idle_cost": asdict(cost) if cost is not None else None,
            "runs": [asdict(run) for run in runs],
        }
        print(json.dumps(report, indent=2))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
