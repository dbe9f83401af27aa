"""How a client's SMTP sessions fall on phigate's server processes.

    .venv/bin/python bench/session_split.py                 # 10 and 50 sessions, about a minute
    .venv/bin/python bench/session_split.py --sessions 10 --trials 40

Starts `bench/relay.py`'s phigate with `processes: 2` (`--processes`) and,
for each number of sessions, `--trials` times: opens that many sessions to
the STARTTLS listener (STARTTLS and AUTH, as a hospital's system does), all
at once from as many threads, and then as many again one after another
(each once the one before is logged in, as a connection pool grows); counts
the sessions each server process holds, from `/proc` (each process's socket
inodes against the established connections of `/proc/net/tcp`); closes them.
It prints how often each split was seen, e.g. `5/5: 20` (the busiest process
first). Everything is on 127.0.0.1; exit status 2 if it could not be set up.
"""

from __future__ import annotations

import argparse
import shutil
import smtplib
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from relay import PRINCIPAL, BenchError, Phigate  # bench/ is on sys.path

_ESTABLISHED = "01"
_SETTLE_SECONDS = 0.3  # for the last sessions to be counted by their processes


def insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # phigate's generated test certificate
    return context


def established_inodes(port: int) -> set[str]:
    """Socket inodes of the established TCP connections to local `port` (IPv4 loopback)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == _ESTABLISHED:
            found.add(fields[9])
    return found


def sessions_per_process(pids: Sequence[int], port: int) -> list[int]:
    """The sessions each process holds on `port`, busiest first."""
    inodes = established_inodes(port)
    counts = []
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().name
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held += 1
        counts.append(held)
    return sorted(counts, reverse=True)


def server_processes(gate: Phigate) -> list[int]:
    """phigate's server processes: the supervisor's `phigate serve` children, or itself alone."""
    children = [
        pid
        for pid in gate.tree()
        if pid != gate.pid and b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    ]
    return children or [gate.pid]


def open_all(count: int, opener: Callable[[], smtplib.SMTP]) -> list[smtplib.SMTP]:
    """`count` sessions opened at once, one thread each."""
    opened: list[smtplib.SMTP] = []
    lock = threading.Lock()

    def one() -> None:
        client = opener()
        with lock:
            opened.append(client)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if len(opened) != count:
        raise BenchError(f"only {len(opened)} of {count} sessions opened")
    return opened


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sessions", type=int, nargs="+", default=[10, 50], help="Sessions per trial (10 50)."
    )
    parser.add_argument("--trials", type=int, default=10, help="Trials of each way (10).")
    parser.add_argument("--processes", type=int, default=2, help="phigate's `processes` (2).")
    args = parser.parse_args(argv)
    if not 1 <= args.trials <= 200 or not all(1 <= n <= 200 for n in args.sessions):
        parser.error("--trials and --sessions must be 1..200")
    workdir = Path(tempfile.mkdtemp(prefix="phigate-split-"))
    gate = Phigate(workdir, 9, "warning", None, processes=args.processes)  # nothing is sent
    context = insecure_context()

    def opener() -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", gate.tls_port, timeout=30)
        client.starttls(context=context)
        client.login(PRINCIPAL, gate.secret)
        return client

    try:
        gate.prepare()
        gate.start()
        servers = server_processes(gate)
        for count in args.sessions:
            for way in ("at once", "one by one"):
                seen: Counter[str] = Counter()
                for _ in range(args.trials):
                    if way == "at once":
                        clients = open_all(count, opener)
                    else:
                        clients = [opener() for _ in range(count)]
                    time.sleep(_SETTLE_SECONDS)
                    split = sessions_per_process(servers, gate.tls_port)
                    seen["/".join(map(str, split))] += 1
                    for client in clients:
                        client.close()
                    time.sleep(_SETTLE_SECONDS)
                splits = ", ".join(f"{split}: {n}" for split, n in sorted(seen.items()))
                print(f"{count} sessions, {way}: {splits}", flush=True)
    except (BenchError, OSError, smtplib.SMTPException) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        gate.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
