"""fsync and fdatasync calls per message: phigate relaying a fixed number of messages.

    .venv/bin/python bench/fsyncs.py                      # 1, 10 and 50 sessions
    .venv/bin/python bench/fsyncs.py --sessions 1 --messages 200

For each number of sessions it starts phigate (`processes: 2` unless told
otherwise) and a sink, attaches `strace -f -c -e trace=fsync,fdatasync` to
every phigate process, sends the messages over the STARTTLS+AUTH listener,
waits until the sink has them all, and prints the calls per message. Counts,
not timings: the figure does not depend on how busy the machine is. The
strace summary counts the calls of the whole run, accept and delivery, and
of whatever phigate does meanwhile (checkpoints, lease renewals).
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from relay import (  # bench/ is on sys.path
    BenchError,
    Phigate,
    RunSpec,
    make_sink,
    run_loadgen,
    wait_until,
)

STRACE = "/usr/bin/strace"
_SUMMARY_LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fsync|fdatasync)\s*$")


def syncs_in(summary: str) -> int:
    """The fsync plus fdatasync calls in an `strace -c` summary."""
    return sum(
        int(m.group(1)) for m in map(_SUMMARY_LINE.match, summary.splitlines()) if m is not None
    )


def measure(sessions: int, messages: int, processes: int) -> tuple[int, int]:
    """(messages accepted, fsync + fdatasync calls) for one run on a fresh data directory."""
    workdir = Path(tempfile.mkdtemp(prefix="phigate-fsyncs-"))
    sink = make_sink("auto", workdir)
    gate = Phigate(workdir, 0, "warning", None, processes)
    tracer: subprocess.Popen[str] | None = None
    try:
        sink.start()
        gate.sink_port = sink.port
        gate.prepare()
        gate.start()
        pids = [str(pid) for pid in gate.tree()]
        summary = workdir / "strace.txt"
        tracer = subprocess.Popen(
            [STRACE, "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", str(summary)]
            + [arg for pid in pids for arg in ("-p", pid)],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        time.sleep(1.0)  # strace attaches to every thread
        before = sink.count()
        load = run_loadgen(RunSpec("starttls", sessions, messages), gate, "fsyncs", 600.0)
        accepted = int(load["accepted"])
        if not wait_until(lambda: sink.count() - before >= accepted, max(60.0, accepted * 0.05)):
            raise BenchError(f"only {sink.count() - before} of {accepted} messages delivered")
        time.sleep(0.5)  # the last outcomes' commits
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
        return accepted, syncs_in(summary.read_text())
    finally:
        if tracer is not None and tracer.poll() is None:
            tracer.kill()
        gate.stop()
        sink.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--messages", type=int, default=500, help="per run (default 500)")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    if not Path(STRACE).exists():
        print(f"bench: {STRACE} not found (Debian package strace)", file=sys.stderr)
        return 2
    print("sessions  messages  fsyncs  per message")
    for sessions in args.sessions:
        try:
            accepted, syncs = measure(sessions, args.messages, args.processes)
        except BenchError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
        print(f"{sessions:8d}  {accepted:8d}  {syncs:6d}  {syncs / max(accepted, 1):11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
