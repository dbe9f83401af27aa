"""Relay benchmark: phigate between a load generator and an SMTP sink, all on 127.0.0.1.

    .venv/bin/python bench/relay.py            # full run, about two minutes
    .venv/bin/python bench/relay.py --quick    # smoke run, under a minute

For each listener (plain; STARTTLS+AUTH) and each number of concurrent
sessions it measures messages/s accepted (client side), messages/s delivered
end to end (first submission until the sink has all of them), accept latency
(DATA to 250) p50/p99, phigate's peak RSS and CPU time (summed over its
process tree: with --processes N, the supervisor and its N server processes),
then checks the promise behind every 250: the sink got exactly the accepted
messages, each accepted queue ID is recorded as delivered and the queue is
empty. Exit status 1 if any run lost (or duplicated) a message, 2 if the
benchmark could not be set up.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import yaml
from loadgen import RECIPIENT  # where the load generator sends (bench/ is on sys.path)

from gateway.config import RATE_LIMIT_NAMES

if TYPE_CHECKING:
    from gateway.config import Settings

BENCH_DIR = Path(__file__).resolve().parent
SMTP_SINK = Path("/usr/sbin/smtp-sink")
DOMAIN = "bench.example.org"
PRINCIPAL = "bench"
LISTENERS = ("plain", "starttls")
DEFAULT_SESSIONS = (1, 10, 50)
DEFAULT_MESSAGES = 2000  # per run with several sessions; a single session sends a quarter
QUICK_MESSAGES = 200
SAMPLE_INTERVAL = 0.02  # sink counter poll, seconds
RSS_EVERY = 5  # RSS sampled every 5th poll, i.e. every 100 ms
# PSS every 50th poll, i.e. every second: reading smaps_rollup walks every page of a
# process (about 2 ms per 160 MB resident), so at RSS's pace it took a quarter of a core
# from phigate's runs (its tree holds three times Postfix's pages), an eighth from Postfix's.
PSS_EVERY = 50
MAX_TREE = 256  # at most this many processes are followed in phigate's process tree
MAX_PROCESSES = 64  # phigate's own limit for `processes`
HAVE_CHILDREN_FILES = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()
MAX_BENCH_SECONDS = 4 * 3600.0  # nothing here runs longer than this
# Sending limits every message is counted against but no run reaches (--rate-limits).
UNREACHED_RATE_LIMIT = 1_000_000_000
# Targets on a 2-core machine (bench/README.md).
TARGET_SESSIONS = 10
TARGET_RATE = 400
TARGET_P99_MS = 100
TARGET_RSS_MB = 300


class BenchError(Exception):
    """The benchmark could not be set up or driven (not a result about phigate)."""


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise BenchError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s")


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def proc_status_kb(pid: int, key: str, file: str = "status") -> int:
    """A `kB` line of /proc/PID/status (VmRSS, VmHWM) or of another such file
    (smaps_rollup: Pss); 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/{file}", encoding="ascii") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def proc_children(pid: int) -> list[int]:
    """Direct children of a process (forked by any of its threads); [] if it is gone.

    Uses /proc/PID/task/TID/children (Linux 3.5+, CONFIG_PROC_CHILDREN) and
    falls back to scanning the ppid field of /proc/*/stat where that is missing.
    """
    if not HAVE_CHILDREN_FILES:
        return _children_by_scan(pid)
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as children:
                found.extend(int(part) for part in children.read().split())
        except (OSError, ValueError):  # the thread ended meanwhile
            continue
    return found


def _children_by_scan(pid: int) -> list[int]:
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def process_tree(root: int) -> list[int]:
    """`root` and its descendants (breadth first, at most MAX_TREE processes)."""
    tree = [root]
    for pid in tree:  # grows while iterating; bounded by MAX_TREE
        for child in proc_children(pid):
            if child not in tree and len(tree) < MAX_TREE:
                tree.append(child)
    return tree


def forest(roots: Sequence[int]) -> list[int]:
    """The process trees of several roots, each process once."""
    return list(dict.fromkeys(pid for root in roots for pid in process_tree(root)))


def tree_rss_kb(pids: Sequence[int]) -> int:
    """Sum of VmRSS over processes (pages shared after fork count once per process)."""
    return sum(proc_status_kb(pid, "VmRSS") for pid in pids)


def tree_pss_kb(pids: Sequence[int]) -> int:
    """Sum of Pss over processes: each shared page divided among the processes sharing it."""
    return sum(proc_status_kb(pid, "Pss", "smaps_rollup") for pid in pids)


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False if not permitted."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def proc_cpu_times(pid: int, thread: int | None = None) -> tuple[float, float]:
    """(user + system CPU time of a process and all its threads, the same of its
    children that exited and were waited for); zeros if the process is gone. With
    `thread`, the first is that thread's alone."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        with open(path, encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return (
            (int(fields[11]) + int(fields[12])) / tick,
            (int(fields[13]) + int(fields[14])) / tick,
        )
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads); 0 if it is gone."""
    return proc_cpu_times(pid)[0]


@dataclass(frozen=True)
class TreeCpu:
    """CPU time of a process tree at one moment."""

    total: float  # every live process plus the reaped children of each
    by_pid: dict[int, float]  # own CPU time of each live process
    # The main threads of the live processes (an event loop in each phigate server
    # process); the rest of `total` is their other threads and reaped children.
    main_threads: float = 0.0

    @classmethod
    def read(cls, root: int) -> TreeCpu:
        # A process that exited and was waited for still counts, through its
        # parent's reaped-children time.
        pids = process_tree(root)
        times = {pid: proc_cpu_times(pid) for pid in pids}
        return cls(
            sum(own + reaped for own, reaped in times.values()),
            {pid: own for pid, (own, _) in times.items()},
            sum(proc_cpu_times(pid, pid)[0] for pid in pids),
        )


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used (all cores), from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0


def own_cpu_seconds() -> float:
    """CPU time of this process and its reaped children (load generators, CLI calls)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def calibrate() -> float:
    """Milliseconds for a fixed pure-Python workload (best of 5): a yardstick for this machine.

    Shared and virtual machines vary in speed over time; runs are comparable
    only when their yardsticks are close.
    """
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        table: dict[int, str] = {}
        for i in range(200_000):
            table[i % 1024] = f"{i:x}"
        best = min(best, time.perf_counter() - start)
    return best * 1000.0


def stop_process(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> int | None:
    """Send `sig`, wait, then SIGKILL if needed; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
    return proc.returncode


# --- sinks ----------------------------------------------------------------------


class Sink(Protocol):
    kind: str
    port: int

    @property
    def pid(self) -> int | None: ...

    def start(self) -> None: ...

    def count(self) -> int: ...

    def sessions(self) -> int:
        """SMTP connections the sink has accepted so far."""
        ...

    def stop(self) -> None: ...


class PostfixSink:
    """Postfix's smtp-sink; its -c counters ("sess=N quit=N mesg=N\\r") go to a file."""

    kind = "smtp-sink"
    _MESG = re.compile(rb"mesg=(\d+)\r")
    _SESS = re.compile(rb"sess=(\d+) ")

    def __init__(self, workdir: Path, dump: Path | None = None) -> None:
        self.port = free_port()
        self.out_path = workdir / "smtp-sink.out"
        self.dump = dump  # every message is appended to this file (-D), for checking content
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [str(SMTP_SINK), "-c"]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]  # smtp-sink refuses to keep root privileges
        if self.dump is not None:
            command += ["-D", str(self.dump)]
        command += ["-m", "1024", f"inet:127.0.0.1:{self.port}", "1024"]
        with self.out_path.open("wb") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_for_port(self.port, 10.0, self.proc)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def count(self) -> int:
        return self._counter(self._MESG)

    def sessions(self) -> int:
        return self._counter(self._SESS)

    def _counter(self, pattern: re.Pattern[bytes]) -> int:
        try:
            with self.out_path.open("rb") as out:
                out.seek(0, os.SEEK_END)
                size = out.tell()
                out.seek(max(0, size - 256))
                tail = out.read()
        except OSError:
            return 0
        found = pattern.findall(tail)
        return int(found[-1]) if found else 0

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, 5.0)
            self.proc = None


class PythonSink:
    """bench/sink.py in its own process; its counter is read over a control port.
    With `tls` (certificate and key) it offers STARTTLS; with `dump` it keeps what
    it receives in that file."""

    kind = "bench/sink.py"

    def __init__(
        self, workdir: Path, tls: tuple[Path, Path] | None = None, dump: Path | None = None
    ) -> None:
        self.port = free_port()
        self.control_port = free_port()
        self.log_path = workdir / "sink.log"
        self.tls = tls
        self.dump = dump
        self.proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._reader: io.BufferedReader | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            str(BENCH_DIR / "sink.py"),
            "--port",
            str(self.port),
            "--control-port",
            str(self.control_port),
            "--lifetime",
            str(MAX_BENCH_SECONDS),
        ]
        if self.tls is not None:
            command += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        if self.dump is not None:
            command += ["--dump", str(self.dump)]
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_for_port(self.control_port, 20.0, self.proc)
        wait_for_port(self.port, 5.0, self.proc)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def count(self) -> int:
        return self._ask(b"COUNT")

    def sessions(self) -> int:
        return self._ask(b"SESSIONS")

    def tls_count(self) -> int:
        """Messages received over TLS."""
        return self._ask(b"TLS")

    def _ask(self, question: bytes) -> int:
        try:
            if self._control is None or self._reader is None:
                self._close_control()
                self._control = socket.create_connection(("127.0.0.1", self.control_port), 2.0)
                self._reader = self._control.makefile("rb")
            self._control.sendall(question + b"\n")
            return int(self._reader.readline())
        except (OSError, ValueError):
            self._close_control()
            return 0

    def _close_control(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(OSError):
                self._reader.close()
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.close()
        self._control = self._reader = None

    def stop(self) -> None:
        self._close_control()
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, 5.0)
            self.proc = None


def start_collector(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """bench/syslog_sink.py, presenting phigate's self-signed certificate."""
    tls = workdir / "data" / "tls"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(BENCH_DIR / "syslog_sink.py"),
            "--port",
            str(port),
            "--cert",
            str(tls / "server.crt"),
            "--key",
            str(tls / "server.key"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    wait_for_port(port, 20.0, proc)
    return proc


def stop_collector(proc: subprocess.Popen[bytes]) -> int | None:
    """Stop the collector; how many syslog messages it received (None if it cannot say)."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    words = out.decode(errors="replace").split()
    return int(words[-1]) if words[-2:-1] == ["frames"] else None


def make_sink(choice: str, workdir: Path) -> Sink:
    if choice == "smtp-sink" and not SMTP_SINK.exists():
        raise BenchError(f"{SMTP_SINK} not found (Debian package postfix)")
    if choice in ("auto", "smtp-sink") and SMTP_SINK.exists():
        return PostfixSink(workdir)
    return PythonSink(workdir)


# --- phigate ----------------------------------------------------------------------


def phigate_command() -> list[str]:
    script = Path(sys.executable).parent / "phigate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


@dataclass
class Phigate:
    """A `phigate serve` process with a plain and a STARTTLS+AUTH listener.

    With `processes` > 1 that process is a supervisor and the servers are its
    children.
    """

    workdir: Path
    sink_port: int
    log_level: str
    workers: int | None
    processes: int = 1
    consent_records: int = 0  # preloaded into the store (bench/consent.py)
    marketing: bool = False  # the recipient is granted marketing consent
    metrics: bool = False  # the metrics listener on, values in multiprocess files
    forward_port: int | None = None  # the audit forwarder on, to bench/syslog_sink.py here
    archive: bool = False  # every accepted message archived (storage in the database)
    # Every message counted against sending limits it never reaches; False: limits off.
    rate_limits: bool = False
    web_tls: bool = False  # the web app (portal, reviewer, consent API) over HTTPS
    # `limits` as given; None: the connection limits raised for many sessions from one address.
    limits: dict[str, Any] | None = None
    sink_tls: str = "none"  # delivery.tls towards the sink
    ca_file: str | None = None  # delivery.ca_file: the CA that verifies the sink's certificate
    plain_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)  # two benchmarks may run at once
    tls_port: int = field(default_factory=free_port)
    secret: str = ""
    proc: subprocess.Popen[bytes] | None = None
    startup_peak_rss_kb: int = 0  # sum over the process tree, sampled during start()

    @property
    def config(self) -> Path:
        return self.workdir / "phigate.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "phigate.log"

    def settings(self) -> dict[str, Any]:
        delivery: dict[str, Any] = {
            "mode": "smarthost",
            "smarthost": f"127.0.0.1:{self.sink_port}",
            "tls": self.sink_tls,
        }
        if self.ca_file is not None:
            delivery["ca_file"] = self.ca_file
        if self.workers is not None:
            delivery["workers"] = self.workers
        return {
            "data_dir": str(self.workdir / "data"),
            "hostname": "phigate.bench.example.org",
            "listeners": [
                {
                    "name": "plain",
                    "address": f"127.0.0.1:{self.plain_port}",
                    "tls": "none",
                    "allow_networks_without_auth": True,
                },
                {"name": "submission", "address": f"127.0.0.1:{self.tls_port}", "tls": "starttls"},
            ],
            "relay_networks": [
                {"name": "bench", "networks": ["127.0.0.0/8"], "domains": [DOMAIN]},
            ],
            "limits": self.limits if self.limits is not None else self.raised_limits(),
            "delivery": delivery,
            "processes": self.processes,
            "log_level": self.log_level,
            "metrics": {"enabled": self.metrics, "address": f"127.0.0.1:{self.metrics_port}"},
            "web": {"address": f"127.0.0.1:{self.web_port}", "tls": self.web_tls},
            "audit": {"forward": self.forward_settings()},
            "archive": {"enabled": self.archive},
            # Off, or so high that no run reaches them: the defaults would refuse the load.
            "rate_limits": {
                "defaults": dict.fromkeys(
                    RATE_LIMIT_NAMES, UNREACHED_RATE_LIMIT if self.rate_limits else 0
                )
            },
        }

    def raised_limits(self) -> dict[str, Any]:
        # phigate divides the limits between its processes; each keeps 1000/500
        # however unevenly the connections are spread.
        return {
            "max_connections": 1000 * self.processes,
            "max_connections_per_ip": 500 * self.processes,
        }

    def forward_settings(self) -> dict[str, Any]:
        if self.forward_port is None:
            return {"enabled": False}
        # The collector presents phigate's own self-signed certificate; it is the CA too.
        return {
            "enabled": True,
            "address": f"127.0.0.1:{self.forward_port}",
            "ca_file": "tls/server.crt",
            "server_name": "phigate.bench.example.org",
        }

    def forward_behind(self, wait: float) -> int:
        """Audit events the forwarder has not confirmed, after waiting up to `wait` s for 0."""
        query = (
            "SELECT count(*) FROM audit_events WHERE id > coalesce("
            "(SELECT event_id FROM audit_export_cursors WHERE name = 'forwarder'), 0)"
        )
        behind = -1
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            uri = f"{(self.workdir / 'data' / 'phigate.db').as_uri()}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
                behind = int(db.execute(query).fetchone()[0])
            if behind == 0:
                break
            time.sleep(0.2)
        return behind

    def prepare(self) -> None:
        """Settings file, keys, certificate and schema (as tests/harness.py does), a principal."""
        from gateway import datadir

        settings = self.prepare_files()
        datadir.open_database(settings).close()
        if self.consent_records:
            from consent import load_records  # bench/consent.py

            seconds = load_records(settings.db_url, self.consent_records)
            log(f"preloaded {self.consent_records} consent records in {seconds:.1f} s")
        if self.marketing:
            self.cli("consent", "grant", RECIPIENT, "--purpose", "marketing", "--source", "admin")
        created = self.cli("principal", "add", PRINCIPAL, "--domain", DOMAIN, "--json")
        self.secret = str(json.loads(created)["secret"])

    def prepare_files(self) -> Settings:
        """The settings file and the data directory with its keys and certificate."""
        from gateway import datadir
        from gateway.settings_loader import load_settings

        self.config.write_text(yaml.safe_dump(self.settings(), sort_keys=False))
        settings = load_settings(self.config)
        datadir.prepare_data_dir(settings, generate_cert=True)
        return settings

    def cli(self, *args: str, timeout: float = 120.0) -> str:
        try:
            result = subprocess.run(
                [*phigate_command(), *args, "-c", str(self.config)],
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"phigate {' '.join(args)} timed out") from exc
        if result.returncode != 0:
            raise BenchError(
                f"phigate {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.strip()[-500:]}"
            )
        return result.stdout

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [*phigate_command(), "serve", "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"phigate exited with {self.proc.returncode}; see "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            tree = process_tree(self.proc.pid)
            self.startup_peak_rss_kb = max(self.startup_peak_rss_kb, tree_rss_kb(tree))
            if self._ready(tree):
                # VmHWM of any one process is a lower bound for the peak of the sum.
                hwm = max(proc_status_kb(pid, "VmHWM") for pid in tree)
                self.startup_peak_rss_kb = max(self.startup_peak_rss_kb, hwm)
                return
            time.sleep(0.05)
        raise BenchError(f"phigate did not get ready within 60 s:\n{self.log_tail()}")

    def _ready(self, tree: Sequence[int]) -> bool:
        if self.processes > 1 and len(tree) < 1 + self.processes:
            return False
        if self.log_level in ("debug", "info"):
            # Each server process logs "ready" once its listeners are open.
            text = self.log_path.read_text(errors="replace")
            return text.count('"event":"ready"') >= self.processes
        # No "ready" event at this level: the listening sockets accept connections
        # (they are bound before any server process starts; close enough).
        return port_open(self.plain_port) and port_open(self.tls_port)

    def tree(self) -> list[int]:
        """phigate's process and its descendants (the server processes when supervising)."""
        return process_tree(self.pid) if self.proc is not None else []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of phigate's log, without the per-message events."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        routine = ('"event":"accepted"', '"event":"delivered"')
        kept = [line for line in text.splitlines() if not any(r in line for r in routine)]
        return "\n".join(kept[-lines:])

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        code = stop_process(self.proc, signal.SIGTERM, 45.0)
        self.proc = None
        return code

    def pending_jobs(self) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("queue", "ls", "--json")))

    def job_states(self) -> dict[str, set[str]]:
        rows = json.loads(self.cli("queue", "ls", "--all", "--json", "--limit", "10000000"))
        states: dict[str, set[str]] = {}
        for row in rows:
            states.setdefault(str(row["queue_id"]), set()).add(str(row["state"]))
        return states


# --- sampling ---------------------------------------------------------------------


class Sampler(threading.Thread):
    """Polls the sink's message counter every 20 ms and, every 100 ms, the sum
    of VmRSS over the process trees of `roots` (phigate's process and its
    descendants; Postfix's master and OpenDKIM); with `pss`, every second (every
    `pss_every` polls), the sum of PSS too.
    It keeps the peaks of the sums and of each process. `pause` stops the polls
    until the next `reset` (a head-to-head pauses the idle system's sampler: its
    reads of /proc cost the machine CPU the measured system would have had)."""

    def __init__(
        self, sink: Sink, roots: Sequence[int], pss: bool = False, pss_every: int = PSS_EVERY
    ) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.sink = sink
        self.roots = list(roots)
        self.pss = pss
        self.pss_every = pss_every  # polls; a multiple of RSS_EVERY
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.polling = threading.Event()
        self.polling.set()
        self.samples: list[tuple[float, int]] = []
        self.latest = sink.count()
        self.rss_peak_kb = 0
        self.pss_peak_kb = 0
        self.rss_peak_by_pid: dict[int, int] = {}
        self.pss_peak_by_pid: dict[int, int] = {}
        self.hwm_reset: list[int] = []  # processes whose VmHWM was reset at the run's start
        self.pids_seen: set[int] = set()  # every process of the tree seen since reset()

    def run(self) -> None:
        for tick in range(int(MAX_BENCH_SECONDS / SAMPLE_INTERVAL)):
            if self.stopping.wait(SAMPLE_INTERVAL):
                return
            if not self.polling.is_set():
                continue
            count = self.sink.count()
            now = time.monotonic()
            tree = forest(self.roots) if tick % RSS_EVERY == 0 else []
            rss = {pid: tree_rss_kb([pid]) for pid in tree}
            pss_due = self.pss and tick % self.pss_every == 0
            pss = {pid: tree_pss_kb([pid]) for pid in tree} if pss_due else {}
            with self.lock:
                self.latest = max(self.latest, count)
                self.samples.append((now, count))
                self.rss_peak_kb = max(self.rss_peak_kb, sum(rss.values()))
                self.pss_peak_kb = max(self.pss_peak_kb, sum(pss.values()))
                for peaks, sample in ((self.rss_peak_by_pid, rss), (self.pss_peak_by_pid, pss)):
                    for pid, kb in sample.items():
                        peaks[pid] = max(peaks.get(pid, 0), kb)
                self.pids_seen.update(tree)

    def pause(self) -> None:
        """Stop polling until the next `reset`."""
        self.polling.clear()

    def reset(self) -> int:
        """Start a new run: forget samples and the RSS peak, poll (again); returns the
        current count."""
        count = self.sink.count()
        tree = forest(self.roots)
        reset = [pid for pid in tree if reset_peak_rss(pid)]
        rss = tree_rss_kb(tree)
        pss = tree_pss_kb(tree) if self.pss else 0
        with self.lock:
            self.hwm_reset = reset
            self.samples.clear()
            self.rss_peak_kb = rss
            self.pss_peak_kb = pss
            self.rss_peak_by_pid = {}
            self.pss_peak_by_pid = {}
            self.pids_seen = set(tree)
            self.latest = max(self.latest, count)
            self.polling.set()
            return self.latest

    def processes_seen(self) -> set[int]:
        with self.lock:
            return set(self.pids_seen)

    def count(self) -> int:
        with self.lock:
            return self.latest

    def reached(self, target: int) -> float | None:
        """When the counter first reached `target` (monotonic time), if it did."""
        with self.lock:
            for when, count in self.samples:
                if count >= target:
                    return when
        return None

    def peak_rss_kb(self) -> int:
        """Peak of the tree's summed RSS since reset(), from the 100 ms samples.

        The VmHWM of a process (where it could be reset) is a lower bound for the
        peak of the sum; with a single process it is the exact peak, which the
        samples can miss.
        """
        tree = forest(self.roots)
        with self.lock:
            reset = list(self.hwm_reset)
            peak = self.rss_peak_kb
        hwm = max((proc_status_kb(pid, "VmHWM") for pid in reset), default=0)
        return max(peak, hwm, tree_rss_kb(tree))

    def process_peaks_kb(self) -> dict[int, tuple[int, int]]:
        """Each process's (peak RSS, peak PSS) since reset(); the RSS peak is at least
        its VmHWM where that could be reset, so a peak between samples still counts."""
        with self.lock:
            reset = set(self.hwm_reset)
            rss, pss = dict(self.rss_peak_by_pid), dict(self.pss_peak_by_pid)
        return {
            pid: (max(kb, proc_status_kb(pid, "VmHWM") if pid in reset else 0), pss.get(pid, 0))
            for pid, kb in rss.items()
        }

    def peak_pss_kb(self) -> int:
        """Peak of the trees' summed PSS since reset(), from the samples each second and
        one more now, as the run ends: a run shorter than a second is sampled too (with
        `pss`)."""
        now = tree_pss_kb(forest(self.roots)) if self.pss else 0
        with self.lock:
            self.pss_peak_kb = max(self.pss_peak_kb, now)
            return self.pss_peak_kb

    def stop(self) -> None:
        self.stopping.set()
        self.join(5.0)


# --- runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    listener: str  # plain | starttls
    sessions: int
    messages: int
    report: bool = True
    size: int | None = None  # bytes per message; None: the load generator's 5 KB


@dataclass
class LoadFigures:
    """What one load generator run says, read the same way by every benchmark."""

    sessions: int
    sent: int
    accepted: int
    refused: dict[str, int]
    errors: dict[str, int]
    accepted_per_s: float
    delivered_per_s: float  # end to end: accepted / (last delivery - first submission)
    p50_ms: float
    p99_ms: float
    max_ms: float
    submit_seconds: float
    end_to_end_seconds: float | None  # None when not every message arrived
    # The load generator's own CPU: on the same cores, it caps what any system can reach.
    client_cpu_ms_per_message: float


def load_figures(load: Mapping[str, Any], sessions: int, done_at: float | None) -> LoadFigures:
    """The figures of a load generator's output; `done_at`: when the last message arrived."""
    accepted = int(load["accepted"])
    first, last = load["first_submit"], load["last_accept"]
    submit = (last - first) if first is not None and last is not None else 0.0
    end_to_end = (done_at - first) if done_at is not None and first is not None else None
    latencies: list[float] = load["latencies_ms"]
    return LoadFigures(
        sessions=sessions,
        sent=int(load["sent"]),
        accepted=accepted,
        refused=dict(load["refused"]),
        errors=dict(load["errors"]),
        accepted_per_s=accepted / submit if submit > 0 else 0.0,
        delivered_per_s=accepted / end_to_end if end_to_end else 0.0,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=0.0),
        submit_seconds=submit,
        end_to_end_seconds=end_to_end,
        client_cpu_ms_per_message=1000.0 * float(load["cpu_seconds"]) / max(accepted, 1),
    )


@dataclass
class RunResult(LoadFigures):
    listener: str
    peak_rss_mb: float
    phigate_cpu_percent: float  # whole process tree, in % of one core
    phigate_cpu_ms_per_message: float  # phigate CPU (all threads, all processes) per message
    process_cpu_percent: dict[str, float]  # each phigate process (pid: % of one core)
    loadgen_cpu_percent: float
    other_cpu_percent: float  # used by processes outside the benchmark, in % of one core
    setup_seconds: float
    delivered: int
    lost: int
    extra: int
    undelivered_ids: int
    queue_left: int
    processes_changed: bool  # a phigate process exited or appeared during the run
    ok: bool


def run_loadgen(spec: RunSpec, gate: Phigate, run_id: str, time_limit: float) -> dict[str, Any]:
    plain = spec.listener == "plain"
    return run_loadgen_at(
        gate.plain_port if plain else gate.tls_port,
        spec.sessions,
        spec.messages,
        run_id,
        time_limit,
        None if plain else gate.secret,
        gate.marketing,
        spec.size,
    )


def run_loadgen_at(
    port: int | Sequence[int],
    sessions: int,
    messages: int,
    run_id: str,
    time_limit: float,
    secret: str | None,
    marketing: bool = False,
    size: int | None = None,
    mix: bool = False,
    rate: float = 0.0,
    mix_size: int | None = None,
    starttls: bool = False,
) -> dict[str, Any]:
    """bench/loadgen.py against 127.0.0.1:`port` (several ports: the sessions spread over
    them in turn); with a `secret`, STARTTLS and AUTH as PRINCIPAL (with `starttls`
    alone, STARTTLS without AUTH); with `mix`, the
    realistic mix of bench/mail_mix.py (with `mix_size`, only its messages of that many
    bytes); with a `rate`, paced at that many messages per
    second. Its JSON result."""
    ports = [port] if isinstance(port, int) else list(port)
    command = [
        sys.executable,
        str(BENCH_DIR / "loadgen.py"),
        *(arg for each in ports for arg in ("--port", str(each))),
        "--sessions",
        str(sessions),
        "--messages",
        str(messages),
        "--time-limit",
        str(time_limit),
        "--run-id",
        run_id,
    ]
    if marketing:
        command.append("--marketing")
    if size is not None:
        command += ["--size", str(size)]
    if mix:
        command.append("--mix")
    if mix_size is not None:
        command += ["--mix-size", str(mix_size // 1024)]
    if rate:
        command += ["--rate", str(rate)]
    if secret is not None:
        command += ["--starttls", "--user", PRINCIPAL]
    elif starttls:
        command.append("--starttls")
    env = {**os.environ, "LOADGEN_SECRET": secret or ""}  # not on the command line
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=time_limit + 180.0,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"load generator did not finish within {time_limit + 180:.0f} s") from exc
    if done.returncode != 0:
        raise BenchError(f"load generator failed ({done.returncode}): {done.stderr[-1000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def bench_cpu_seconds(phigate_cpu: TreeCpu, sink: Sink) -> float:
    """CPU time of everything the benchmark runs: phigate's tree, the sink, this driver
    and its reaped children (load generators, CLI calls)."""
    sink_pid = sink.pid
    sink_cpu = proc_cpu_seconds(sink_pid) if sink_pid is not None else 0.0
    return phigate_cpu.total + sink_cpu + own_cpu_seconds()


def stop_all(sampler: Sampler | None, gate: Phigate | None, sink: Sink | None) -> int | None:
    """Stop what a benchmark started, in order: the sampler, phigate (SIGTERM), the
    sink. phigate's exit status, or None when it never started."""
    if sampler is not None:
        sampler.stop()
    stopped = gate.stop() if gate is not None else None
    if sink is not None:
        sink.stop()
    return stopped


def run_one(
    spec: RunSpec, gate: Phigate, sink: Sink, sampler: Sampler, index: int, time_limit: float
) -> RunResult:
    baseline = sampler.reset()
    tree_before = TreeCpu.read(gate.pid)
    machine_before, ours_before = machine_busy_seconds(), bench_cpu_seconds(tree_before, sink)
    wall_before = time.monotonic()
    load = run_loadgen(spec, gate, f"run{index}", time_limit)
    accepted = int(load["accepted"])
    target = baseline + accepted
    # Deliveries get at least a minute, or 20 ms per message if that is longer.
    drain_timeout = max(60.0, accepted * 0.02)
    wait_until(lambda: sampler.count() >= target or not gate.alive(), drain_timeout)
    done_at = sampler.reached(target) if accepted else None
    tree_after = TreeCpu.read(gate.pid)
    machine_after, ours_after = machine_busy_seconds(), bench_cpu_seconds(tree_after, sink)
    cpu_used = max(0.0, tree_after.total - tree_before.total)  # 0 once phigate is gone
    other_cpu = max(0.0, (machine_after - machine_before) - (ours_after - ours_before))
    other_window = max(time.monotonic() - wall_before, 1e-9)
    wall_after = done_at if done_at is not None else time.monotonic()
    peak_rss_kb = sampler.peak_rss_kb()
    seen = sampler.processes_seen() | set(tree_before.by_pid) | set(tree_after.by_pid)
    processes_changed = not (set(tree_before.by_pid) == set(tree_after.by_pid) == seen)

    # The promise: the queue drains, every accepted ID is delivered, the sink has each once.
    # The CLI reads the store directly, so this works even if phigate died.
    pending: list[dict[str, Any]] = []
    for _ in range(60):  # bounded: about a minute of CLI calls
        pending = gate.pending_jobs()
        if not pending or not gate.alive():
            break
        time.sleep(0.5)
    states = gate.job_states()
    undelivered = sum(1 for qid in load["queue_ids"] if states.get(qid) != {"delivered"})
    time.sleep(2 * SAMPLE_INTERVAL + 0.05)  # let a late duplicate show at the sink
    delivered = sampler.count() - baseline
    lost = max(accepted - delivered, undelivered)
    extra = max(0, delivered - accepted)

    figures = load_figures(load, spec.sessions, done_at)
    wall = max(wall_after - wall_before, 1e-9)
    busy = max(figures.submit_seconds, 1e-9)
    by_process = {
        str(pid): 100.0 * max(0.0, tree_after.by_pid[pid] - cpu) / wall
        for pid, cpu in tree_before.by_pid.items()
        if pid in tree_after.by_pid
    }
    return RunResult(
        **vars(figures),
        listener=spec.listener,
        peak_rss_mb=peak_rss_kb / 1024.0,
        phigate_cpu_percent=100.0 * cpu_used / wall,
        phigate_cpu_ms_per_message=1000.0 * cpu_used / max(accepted, 1),
        process_cpu_percent=by_process,
        loadgen_cpu_percent=100.0 * float(load["cpu_seconds"]) / busy,
        other_cpu_percent=100.0 * other_cpu / other_window,
        setup_seconds=float(load["setup_seconds"]),
        delivered=delivered,
        lost=lost,
        extra=extra,
        undelivered_ids=undelivered,
        queue_left=len(pending),
        processes_changed=processes_changed,
        ok=lost == 0 and extra == 0 and not pending and accepted > 0,
    )


HEADER = (
    "listener",
    "sessions",
    "sent",
    "accepted/s",
    "delivered/s",
    "p50 ms",
    "p99 ms",
    "peak RSS MB",
    "CPU %",
    "lost",
)


def format_table(results: Sequence[RunResult]) -> str:
    rows = [HEADER]
    for r in results:
        rows.append(
            (
                r.listener,
                str(r.sessions),
                str(r.sent),
                f"{r.accepted_per_s:.0f}",
                f"{r.delivered_per_s:.0f}",
                f"{r.p50_ms:.1f}",
                f"{r.p99_ms:.1f}",
                f"{r.peak_rss_mb:.0f}",
                f"{r.phigate_cpu_percent:.0f}",
                str(r.lost) + (f" (+{r.extra} extra)" if r.extra else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(widths[i]) for i, cell in enumerate(row) if i > 0]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def notes(results: Sequence[RunResult]) -> Iterator[str]:
    for r in results:
        where = f"{r.listener}/{r.sessions}"
        if r.refused or r.errors:
            yield f"{where}: not accepted: refused {r.refused or {}} errors {r.errors or {}}"
        if r.other_cpu_percent > 15.0:
            yield (
                f"{where}: other processes used {r.other_cpu_percent:.0f}% of a core during "
                "this run; its figures are low by that much contention"
            )
        if r.processes_changed:
            yield (
                f"{where}: a phigate process exited or started during this run (see "
                "process_exited in phigate's log); its figures are not comparable"
            )
        if r.lost or r.extra or r.queue_left:
            yield (
                f"{where}: PROMISE BROKEN: accepted {r.accepted}, sink got {r.delivered}, "
                f"{r.undelivered_ids} accepted IDs not delivered, {r.queue_left} jobs queued"
            )


def target_lines(results: Sequence[RunResult], peak_rss_mb: float) -> Iterator[str]:
    """The targets of bench/README.md, met or missed (they do not change the exit status)."""
    for r in results:
        if r.listener != "plain" or r.sessions != TARGET_SESSIONS:
            continue
        checks = [
            (
                "accepted/s",
                r.accepted_per_s >= TARGET_RATE,
                f"{r.accepted_per_s:.0f}",
                f">= {TARGET_RATE}",
            ),
            (
                "delivered/s",
                r.delivered_per_s >= TARGET_RATE,
                f"{r.delivered_per_s:.0f}",
                f">= {TARGET_RATE}",
            ),
            ("p99 ms", r.p99_ms < TARGET_P99_MS, f"{r.p99_ms:.0f}", f"< {TARGET_P99_MS}"),
            (
                "peak RSS MB (whole benchmark)",
                peak_rss_mb < TARGET_RSS_MB,
                f"{peak_rss_mb:.0f}",
                f"< {TARGET_RSS_MB}",
            ),
        ]
        parts = [
            f"{name} {value} ({'met' if ok else 'MISSED'}: {goal})"
            for name, ok, value, goal in checks
        ]
        yield f"targets, plain listener, {TARGET_SESSIONS} sessions: " + "; ".join(parts)


def plan(args: argparse.Namespace) -> list[RunSpec]:
    many = args.messages or (QUICK_MESSAGES if args.quick else DEFAULT_MESSAGES)
    specs = [
        RunSpec(listener, min(5, args.sessions[-1]), 20, report=False)
        for listener in args.listeners
    ]  # warm-up: imports, caches, the argon2 check
    for listener in args.listeners:
        for sessions in args.sessions:
            messages = many if sessions > 1 else max(1, many // 4)
            specs.append(RunSpec(listener, sessions, max(messages, sessions)))
    return specs


def _int_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(not 1 <= v <= 500 for v in values):
        raise argparse.ArgumentTypeError("give numbers from 1 to 500, comma separated")
    return values


def _listener_list(text: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values or any(v not in LISTENERS for v in values):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(LISTENERS)}")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark phigate's relay path (load generator -> phigate -> sink) on "
        "127.0.0.1."
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=None,
        help=f"Messages per run with several sessions (default "
        f"{DEFAULT_MESSAGES}; a 1-session run sends a quarter).",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"Smoke run: {QUICK_MESSAGES} messages per run."
    )
    parser.add_argument(
        "--sessions",
        type=_int_list,
        default=list(DEFAULT_SESSIONS),
        help="Concurrent sessions per run, comma separated (default 1,10,50).",
    )
    parser.add_argument(
        "--listeners",
        type=_listener_list,
        default=list(LISTENERS),
        help="plain, starttls or both (default plain,starttls).",
    )
    parser.add_argument(
        "--sink",
        choices=("auto", "smtp-sink", "python"),
        default="auto",
        help="auto: Postfix's smtp-sink if installed, else bench/sink.py.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="delivery.workers for phigate (default: phigate's default).",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="phigate's `processes` setting: server processes forked by a "
        "supervisor when above 1 (default 1).",
    )
    parser.add_argument(
        "--marketing",
        action="store_true",
        help="Send marketing mail to a recipient with consent: intake looks consent up, "
        "delivery checks it again and adds List-Unsubscribe (default: plain mail).",
    )
    parser.add_argument(
        "--consent-records",
        type=int,
        default=0,
        help="Preload this many consent records (bench/consent.py) into phigate's store "
        "before starting it (default 0).",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="phigate's log level (default info).",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=300.0,
        help="Stop submitting after this many seconds in one run.",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="Print the results as JSON on stdout (the table goes to stderr).",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="Turn phigate's metrics listener on (bench/metrics_overhead.py compares).",
    )
    parser.add_argument(
        "--archive",
        action="store_true",
        help="Archive every accepted message (storage in the database; "
        "bench/archive_write.py compares).",
    )
    parser.add_argument(
        "--rate-limits",
        action="store_true",
        help="Check and count every message against sending limits (rate_limits) set too "
        "high to be reached (bench/rate_limit_overhead.py compares); without it the "
        "limits are off, as the defaults would refuse the load.",
    )
    parser.add_argument(
        "--forward",
        action="store_true",
        help="Turn the audit forwarder on, sending to bench/syslog_sink.py over TLS "
        "(its CPU shows as other processes').",
    )
    parser.add_argument(
        "--keep", action="store_true", help="Keep the temporary directory (config, data, logs)."
    )
    args = parser.parse_args(argv)
    if args.messages is not None and not 1 <= args.messages <= 1_000_000:
        parser.error("--messages must be 1..1000000")
    if not 0 <= args.consent_records <= 10_000_000:
        parser.error("--consent-records must be 0..10000000")
    if not 1 <= args.processes <= MAX_PROCESSES:
        parser.error(f"--processes must be 1..{MAX_PROCESSES}")
    if not 1.0 <= args.time_limit <= 3600.0:
        parser.error("--time-limit must be 1..3600 seconds")
    args.sessions = sorted(set(args.sessions))
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    yardstick_before = calibrate()
    workdir = Path(tempfile.mkdtemp(prefix="phigate-bench-"))
    sink: Sink | None = None
    gate: Phigate | None = None
    collector: subprocess.Popen[bytes] | None = None
    forward_behind: int | None = None
    forwarded_frames: int | None = None
    sampler: Sampler | None = None
    results: list[RunResult] = []
    exit_code = 0
    startup_rss_kb = 0
    overall_peak_mb = warmup_peak_mb = 0.0
    try:
        sink = make_sink(args.sink, workdir)
        sink.start()
        gate = Phigate(
            workdir,
            sink.port,
            args.log_level,
            args.workers,
            args.processes,
            args.consent_records,
            args.marketing,
            args.metrics,
            free_port() if args.forward else None,
            archive=args.archive,
            rate_limits=args.rate_limits,
        )
        gate.prepare()
        if gate.forward_port is not None:
            collector = start_collector(workdir, gate.forward_port)
        gate.start()
        servers = gate.tree()[1:]
        log(
            f"phigate pid {gate.pid}"
            + (
                f" (supervisor; server processes {', '.join(map(str, servers))})"
                if args.processes > 1
                else ""
            )
            + f" plain=127.0.0.1:{gate.plain_port} starttls=127.0.0.1:{gate.tls_port}; "
            f"sink {sink.kind} on 127.0.0.1:{sink.port}; work dir {workdir}"
        )
        startup_rss_kb = gate.startup_peak_rss_kb  # before any per-run reset
        sampler = Sampler(sink, [gate.pid])
        sampler.start()
        for index, spec in enumerate(plan(args)):
            if not gate.alive():
                log(f"bench: phigate is no longer running:\n{gate.log_tail()}")
                exit_code = 1
                break
            label = "warm-up" if not spec.report else "run"
            log(f"{label}: {spec.listener}, {spec.sessions} sessions, {spec.messages} messages")
            result = run_one(spec, gate, sink, sampler, index, args.time_limit)
            if spec.report:
                overall_peak_mb = max(overall_peak_mb, result.peak_rss_mb)
            else:
                warmup_peak_mb = max(warmup_peak_mb, result.peak_rss_mb)
            if not result.ok:
                exit_code = 1
            if spec.report or not result.ok:
                results.append(result)
            split = ""
            if args.processes > 1:
                split = "; CPU % by process " + " ".join(
                    f"{pid}:{pct:.0f}" for pid, pct in result.process_cpu_percent.items()
                )
            log(
                f"  accepted {result.accepted}/{result.sent} in {result.submit_seconds:.2f} s, "
                f"{result.accepted_per_s:.0f}/s; delivered {result.delivered}, "
                f"{result.delivered_per_s:.0f}/s end to end; p99 {result.p99_ms:.1f} ms"
                f"{split}" + ("" if result.ok else "  <- PROBLEM")
            )
    except BenchError as exc:
        log(f"bench: {exc}")
        return 2
    finally:
        if sampler is not None:
            sampler.stop()
        if collector is not None and gate is not None and gate.alive():
            forward_behind = gate.forward_behind(30.0)
        stopped = gate.stop() if gate is not None else None
        if collector is not None:
            forwarded_frames = stop_collector(collector)
        if sink is not None:
            sink.stop()
        if gate is not None and stopped not in (None, 0):
            log(
                f"bench: phigate exit status {stopped} (0 expected after SIGTERM):\n"
                f"{gate.log_tail()}"
            )
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    yardstick_after = calibrate()
    out = sys.stderr if args.json else sys.stdout
    print(format_table(results), file=out)
    tree_note = (
        f" (sum over the supervisor and {args.processes} server processes)"
        if args.processes > 1
        else ""
    )
    print(
        f"phigate processes: {args.processes}; peak RSS{tree_note}: "
        f"{startup_rss_kb / 1024:.0f} MB at start-up, "
        f"{warmup_peak_mb:.0f} MB in the warm-ups, {overall_peak_mb:.0f} MB in the runs; "
        f"sink: {sink.kind}; machine yardstick "
        f"{yardstick_before:.0f}/{yardstick_after:.0f} ms (before/after, lower is faster)",
        file=out,
    )
    if args.forward:
        print(
            f"audit forwarder: bench/syslog_sink.py received {forwarded_frames} syslog "
            f"messages; {forward_behind} events not yet confirmed 30 s after the last run",
            file=out,
        )
    for line in target_lines(results, max(startup_rss_kb / 1024, warmup_peak_mb, overall_peak_mb)):
        print(line, file=out)
    for note in notes(results):
        print(note, file=out)
    if stopped not in (None, 0):
        exit_code = exit_code or 1
    if args.json:
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "cpus": os.cpu_count(),
            "sink": sink.kind,
            "yardstick_ms": [yardstick_before, yardstick_after],
            "phigate_exit_code": stopped,
            "phigate_processes": args.processes,
            "consent_records": args.consent_records,
            "marketing": args.marketing,
            "metrics": args.metrics,
            "archive": args.archive,
            "rate_limits": args.rate_limits,
            "forward": args.forward,
            "forward_behind_events": forward_behind,
            "forwarded_frames": forwarded_frames,
            "phigate_startup_peak_rss_mb": startup_rss_kb / 1024.0,
            "phigate_warmup_peak_rss_mb": warmup_peak_mb,
            "phigate_peak_rss_mb": overall_peak_mb,
            "ok": exit_code == 0,
            "runs": [asdict(r) for r in results],
        }
        print(json.dumps(report, indent=2))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
