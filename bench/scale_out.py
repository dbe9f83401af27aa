"""Scale-out benchmark: one node on SQLite, one node on PostgreSQL, two nodes on one PostgreSQL.

    PYTHONPATH=$PWD .venv/bin/python bench/scale_out.py
    PYTHONPATH=$PWD .venv/bin/python bench/scale_out.py --messages 2000 --sessions 10 --rounds 2

The load is bench/relay.py's (bench/loadgen.py: persistent sessions on the
plain listener, 5 KB messages without PHI, one shared bench/sink.py) against
three configurations, each a set of `phigate serve` processes (one server
process each, at their defaults otherwise):

    sqlite  one node, its embedded SQLite store
    pg-1    one node on a PostgreSQL cluster of the benchmark's own
    pg-2    that node and a second one (its own ports and data directory, a
            copy of the first node's keys/, docs/scale-out.md) on the same
            database; the load generator's sessions alternate between the two

The cluster (Debian's server binaries, tests/private_postgres.py) keeps its
durability settings (fsync on, synchronous commit), so a COMMIT waits for its
WAL flush as on a real server, and loads pg_stat_statements. Runs go
A-B-C-C-B-A (sqlite, pg-1, pg-2) so a linear drift of the machine cancels, and
the tables grow by the same amount on average before each PostgreSQL
configuration. Each run starts its nodes, warms them up, measures, checks and
stops them.

For each run: delivered/s (first submission until the sink has every accepted
message), accepted/s, CPU ms per message of the phigate processes and of the
PostgreSQL server's processes, and the database's time per message:
pg_stat_statements' total_exec_time (reset after the warm-up; lock waits
included) with its share of the run's wall time, and pg_stat_wal's write and
flush time, which commits wait for outside any statement's timing; and the
slowest statements. Then the check: the sink got every accepted message exactly
once (counted by Message-ID; each node's deliveries from its log), each accepted
queue ID is delivered and the queue is empty. Exit status 1 if a run lost or
duplicated a message, 2 if the benchmark could not be set up. See bench/README.md.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

import psycopg
import yaml
from relay import (  # bench/ is on sys.path
    BenchError,
    Phigate,
    PythonSink,
    Sampler,
    TreeCpu,
    calibrate,
    load_figures,
    log,
    machine_busy_seconds,
    own_cpu_seconds,
    proc_cpu_seconds,
    run_loadgen_at,
    wait_until,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from private_postgres import PrivatePostgres, running_postgres  # tests/private_postgres.py

CONFIGURATIONS = ("sqlite", "pg-1", "pg-2")
ORDER = (0, 1, 2, 2, 1, 0)  # A-B-C-C-B-A, indices into CONFIGURATIONS
DEFAULT_MESSAGES = 2000
DEFAULT_SESSIONS = 10
WARMUP_MESSAGES = 20
DATABASE = "phigate"
# The cluster as a server is run: durable commits; pg_stat_statements loaded; room
# for two nodes' connection pools and the CLI.
POSTGRES_SETTINGS: Mapping[str, str] = {
    "shared_preload_libraries": "pg_stat_statements",
    "track_wal_io_timing": "on",  # pg_stat_wal's write and sync times
    "max_connections": "100",
}
# Statements (top level; phigate runs no functions) in the benchmark's database, less the
# benchmark's own queries.
NODES_STATEMENTS = (
    "FROM pg_stat_statements "
    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND query NOT ILIKE '%pg_stat_statements%'"
)
STATEMENT_TIME = (
    f"SELECT coalesce(sum(total_exec_time), 0), coalesce(sum(calls), 0) {NODES_STATEMENTS}"
)
# Time spent writing and flushing WAL, all processes: commits wait for it, after their
# COMMIT statement's timing has ended.
WAL_TIME = "SELECT wal_write_time + wal_sync_time FROM pg_stat_wal"
# Processes report WAL statistics at most every second while busy, within 10 s once idle.
STATS_SETTLE = 11.0
# The statements that took longest (normalised: constants are $1, $2, ...).
TOP_STATEMENTS = (
    r"SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 70), total_exec_time "
    f"{NODES_STATEMENTS} ORDER BY total_exec_time DESC LIMIT 5"
)
EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<([^>]+)@bench\.example\.org>", re.I | re.M)


class Node(Phigate):
    """relay.py's phigate as one node: with `database_url`, on that database; with
    `keys_from`, given a copy of that node's keys directory instead of keys of its own."""

    def __init__(
        self,
        workdir: Path,
        sink_port: int,
        name: str,
        database_url: str | None = None,
        keys_from: Path | None = None,
    ) -> None:
        workdir.mkdir(parents=True)
        super().__init__(workdir, sink_port, "info", None)
        self.name = name
        self.database_url = database_url
        self.keys_from = keys_from
        self.starts = 0  # earlier logs are kept as phigate.N.log

    @property
    def keys(self) -> Path:
        return self.workdir / "data" / "keys"

    def settings(self) -> dict[str, Any]:
        settings = super().settings()
        settings["node"] = {"name": self.name}
        if self.database_url is not None:
            settings["database_url"] = self.database_url
        return settings

    def start(self) -> None:
        # A fresh log for each start: readiness is read from its "ready" events.
        if self.log_path.exists():
            self.starts += 1
            self.log_path.replace(self.workdir / f"phigate.{self.starts}.log")
        # Ports free now: one chosen a run earlier may since be another connection's.
        self.plain_port, self.tls_port = listener_port(), listener_port()
        self.web_port, self.metrics_port = listener_port(), listener_port()
        self.config.write_text(yaml.safe_dump(self.settings(), sort_keys=False))
        super().start()

    def delivered_since(self, offset: int) -> int:
        """Deliveries this node logged past `offset` of its log (its size at a moment)."""
        with self.log_path.open("rb") as log_file:
            log_file.seek(offset)
            return log_file.read().count(b'"event":"delivered"')

    def prepare(self) -> None:
        if self.keys_from is None:
            super().prepare()
            return
        # The schema and the principal are the first node's.
        shutil.copytree(self.keys_from, self.keys)
        self.keys.chmod(0o700)
        self.prepare_files()


def listener_port() -> int:
    """A free loopback port below the kernel's ephemeral range, from which outgoing
    connections (the nodes' own, to PostgreSQL and to the sink) take theirs."""
    ephemeral = int(EPHEMERAL_PORTS.read_text().split()[0])
    for _ in range(100):  # bounded: nearly every port there is free
        port = random.randrange(ephemeral // 2, ephemeral)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise BenchError(f"no free port from {ephemeral // 2} to {ephemeral - 1} on 127.0.0.1")


@dataclass(frozen=True)
class Configuration:
    name: str
    nodes: tuple[Node, ...]
    postgres: PrivatePostgres | None  # None: the nodes' own SQLite store

    @property
    def ports(self) -> list[int]:
        return [node.plain_port for node in self.nodes]


def postgres_url(server: PrivatePostgres) -> str:
    return str(server.url).rsplit("/", 1)[0] + f"/{DATABASE}"


def prepare_database(server: PrivatePostgres) -> None:
    """The nodes' database, with pg_stat_statements (its view lives in a database)."""
    plain = server.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    with psycopg.connect(plain.rsplit("/", 1)[0] + f"/{DATABASE}", autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")


class DatabaseClock:
    """pg_stat_statements of the nodes' database and pg_stat_wal, over one connection of
    its own."""

    def __init__(self, server: PrivatePostgres) -> None:
        url = postgres_url(server).replace("postgresql+psycopg://", "postgresql://")
        self.conn = psycopg.connect(url, autocommit=True)

    def reset(self) -> None:
        self.conn.execute("SELECT pg_stat_statements_reset()")

    def read(self) -> tuple[float, int]:
        """Milliseconds spent executing statements since reset(), and the statements."""
        row = self.conn.execute(STATEMENT_TIME).fetchone()
        assert row is not None
        return float(row[0]), int(row[1])

    def wal_ms(self) -> float:
        """Milliseconds spent writing and flushing WAL since the cluster started."""
        row = self.conn.execute(WAL_TIME).fetchone()
        assert row is not None
        return float(row[0])

    def top(self) -> dict[str, float]:
        """The five statements that took longest since reset(): milliseconds each."""
        rows = self.conn.execute(TOP_STATEMENTS).fetchall()
        return {str(query): float(ms) for query, ms in rows}

    def close(self) -> None:
        self.conn.close()


def make_configurations(
    workdir: Path, sink_port: int, server: PrivatePostgres
) -> list[Configuration]:
    """The three configurations, their files written and their stores ready."""
    alone = Node(workdir / "sqlite", sink_port, "sqlite")
    first = Node(workdir / "pg-n1", sink_port, "n1", postgres_url(server))
    second = Node(workdir / "pg-n2", sink_port, "n2", postgres_url(server), first.keys)
    alone.prepare()
    first.prepare()
    # The first start makes the keys made at start (web sessions, links, header values).
    first.start()
    if first.stop() != 0:
        raise BenchError(f"the first node did not stop cleanly:\n{first.log_tail()}")
    second.prepare()
    return [
        Configuration("sqlite", (alone,), None),
        Configuration("pg-1", (first,), server),
        Configuration("pg-2", (first, second), server),
    ]


def plan(rounds: int) -> Iterator[int]:
    """Configuration indices in A-B-C-C-B-A blocks."""
    for _ in range(rounds):
        yield from ORDER


@dataclass
class RunResult:
    configuration: str
    nodes: int
    sessions: int
    accepted: int
    refused: dict[str, int]
    errors: dict[str, int]
    delivered_per_s: float
    accepted_per_s: float
    wall_seconds: float  # first submission until the sink had every accepted message
    other_cpu_percent: float  # processes outside the benchmark, % of one core
    phigate_cpu_ms_per_message: float  # every node's process tree
    postgres_cpu_ms_per_message: float | None  # the cluster's processes
    db_ms_per_message: float | None  # pg_stat_statements' total_exec_time / delivered
    db_share_of_wall: float | None  # total_exec_time / wall time (over 1: statements overlap)
    wal_ms_per_message: float | None  # WAL write and flush time (commits wait for it)
    statements_per_message: float | None
    top_statements: dict[str, float]  # ms per message delivered of the slowest statements
    by_message_id: int  # distinct Message-IDs of this run the sink got
    delivered_by_node: list[int]  # deliveries each node logged during the run
    duplicates: int  # Message-IDs the sink got more than once
    undelivered_ids: int  # accepted queue IDs not recorded as delivered
    queue_left: int
    stopped_cleanly: bool
    ok: bool


def message_ids(dump: Path, offset: int, run_id: str) -> Counter[str]:
    """How often each Message-ID of `run_id` is in the sink's dump after `offset`."""
    with dump.open("rb") as kept:
        kept.seek(offset)
        found = MESSAGE_ID.findall(kept.read())
    prefix = run_id.encode() + b"."
    return Counter(m.decode() for m in found if m.startswith(prefix))


def warm_up(configuration: Configuration, sink: PythonSink, sessions: int) -> None:
    """Connections, caches, the first key loads: the same few messages through each node."""
    before = sink.count()
    load = run_loadgen_at(
        configuration.ports, min(sessions, 5), WARMUP_MESSAGES, "warmup", 60.0, None
    )
    if int(load["accepted"]) != WARMUP_MESSAGES:
        raise BenchError(
            f"{configuration.name} accepted {load['accepted']} of {WARMUP_MESSAGES} warm-up "
            f"messages: refused {load['refused']}, errors {load['errors']}"
        )
    if not wait_until(lambda: sink.count() >= before + WARMUP_MESSAGES, 60.0):
        raise BenchError(f"{configuration.name} did not deliver its warm-up within 60 s")


def tree_cpu(roots: Sequence[int]) -> float:
    return sum(TreeCpu.read(root).total for root in roots)


def sink_cpu(sink: PythonSink) -> float:
    return proc_cpu_seconds(sink.pid) if sink.pid is not None else 0.0


def measure(
    configuration: Configuration,
    sink: PythonSink,
    sessions: int,
    messages: int,
    run_id: str,
    time_limit: float,
) -> RunResult:
    """Start the configuration's nodes, warm up, one measured load generator run, the
    checks; the nodes are stopped again whatever happens."""
    assert sink.dump is not None
    clock = DatabaseClock(configuration.postgres) if configuration.postgres else None
    sampler: Sampler | None = None
    try:
        for node in configuration.nodes:
            node.start()
        roots = [node.pid for node in configuration.nodes]
        warm_up(configuration, sink, sessions)
        sampler = counter = Sampler(sink, roots)
        sampler.start()
        postgres = [configuration.postgres.pid()] if configuration.postgres else []
        wal_before = wal_after = 0.0
        if clock is not None:
            time.sleep(STATS_SETTLE)  # the warm-up's WAL statistics reported
            wal_before = clock.wal_ms()
            clock.reset()
        offset = sink.dump.stat().st_size
        logged = [node.log_path.stat().st_size for node in configuration.nodes]
        baseline = counter.reset()
        cpu_before, postgres_before = tree_cpu(roots), tree_cpu(postgres)
        ours_before = own_cpu_seconds() + sink_cpu(sink)
        machine_before, wall_before = machine_busy_seconds(), time.monotonic()
        load = run_loadgen_at(configuration.ports, sessions, messages, run_id, time_limit, None)
        accepted = int(load["accepted"])
        target = baseline + accepted
        wait_until(lambda: counter.count() >= target, 60 + accepted / 50)
        done_at = counter.reached(target) if accepted else None
        db_ms, statements = clock.read() if clock is not None else (0.0, 0)
        top = clock.top() if clock is not None else {}
        cpu = tree_cpu(roots) - cpu_before
        postgres_cpu = tree_cpu(postgres) - postgres_before
        ours = own_cpu_seconds() + sink_cpu(sink) - ours_before + cpu + postgres_cpu
        other_cpu = max(0.0, machine_busy_seconds() - machine_before - ours)
        window = max(time.monotonic() - wall_before, 1e-9)
        figures = load_figures(load, sessions, done_at)

        # The promise: every accepted message reached the sink once; the queue is empty.
        first = configuration.nodes[0]
        pending = first.pending_jobs()
        for _ in range(20):  # bounded: ten seconds for the last deliveries' records
            if not pending:
                break
            time.sleep(0.5)
            pending = first.pending_jobs()
        states = first.job_states()
        undelivered = sum(1 for qid in load["queue_ids"] if states.get(qid) != {"delivered"})
        time.sleep(0.2)  # let a late duplicate show at the sink
        seen = message_ids(sink.dump, offset, run_id)
        by_node = [n.delivered_since(at) for n, at in zip(configuration.nodes, logged, strict=True)]
        if clock is not None:
            time.sleep(STATS_SETTLE)  # the run's WAL statistics reported
            wal_after = clock.wal_ms()
    finally:
        if sampler is not None:
            sampler.stop()
        codes = [node.stop() for node in configuration.nodes]
        if clock is not None:
            clock.close()
    delivered = sum(seen.values())
    duplicates = sum(1 for count in seen.values() if count > 1)
    wall = figures.end_to_end_seconds
    on_postgres = configuration.postgres is not None
    stopped_cleanly = all(code == 0 for code in codes)
    return RunResult(
        configuration=configuration.name,
        nodes=len(configuration.nodes),
        sessions=sessions,
        accepted=accepted,
        refused=figures.refused,
        errors=figures.errors,
        delivered_per_s=figures.delivered_per_s,
        accepted_per_s=figures.accepted_per_s,
        wall_seconds=wall or 0.0,
        other_cpu_percent=100.0 * other_cpu / window,
        phigate_cpu_ms_per_message=1000.0 * cpu / max(accepted, 1),
        postgres_cpu_ms_per_message=1000.0 * postgres_cpu / max(accepted, 1)
        if on_postgres
        else None,
        db_ms_per_message=db_ms / max(delivered, 1) if on_postgres else None,
        db_share_of_wall=db_ms / 1000.0 / wall if on_postgres and wall else None,
        wal_ms_per_message=(wal_after - wal_before) / max(delivered, 1) if on_postgres else None,
        statements_per_message=statements / max(delivered, 1) if on_postgres else None,
        top_statements={query: ms / max(delivered, 1) for query, ms in top.items()},
        by_message_id=len(seen),
        delivered_by_node=by_node,
        duplicates=duplicates,
        undelivered_ids=undelivered,
        queue_left=len(pending),
        stopped_cleanly=stopped_cleanly,
        ok=(
            accepted > 0
            and len(seen) == accepted
            and duplicates == 0
            and undelivered == 0
            and not pending
            and stopped_cleanly
        ),
    )


# --- report ----------------------------------------------------------------------


@dataclass
class Summary:
    configuration: str
    runs: int
    delivered_per_s: float
    delivered_range: tuple[float, float]
    accepted_per_s: float
    phigate_cpu_ms_per_message: float
    postgres_cpu_ms_per_message: float | None
    db_ms_per_message: float | None
    db_share_of_wall: float | None
    wal_ms_per_message: float | None
    statements_per_message: float | None
    other_cpu_percent: float
    exactly_once: str  # "2000/2000" per run, or what went wrong


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return mean(known) if known else None


def exactly_once(run: RunResult) -> str:
    """The run's Message-IDs at the sink over its accepted messages, with who delivered
    them when there are several nodes."""
    shown = f"{run.by_message_id}/{run.accepted}"
    if run.duplicates:
        shown += f" ({run.duplicates} twice)"
    if len(run.delivered_by_node) > 1:
        shown += f" ({'+'.join(map(str, run.delivered_by_node))})"
    return shown


def summarise(results: Sequence[RunResult]) -> list[Summary]:
    summaries = []
    for name in CONFIGURATIONS:
        runs = [r for r in results if r.configuration == name]
        if not runs:
            continue
        rates = [r.delivered_per_s for r in runs]
        summaries.append(
            Summary(
                configuration=name,
                runs=len(runs),
                delivered_per_s=mean(rates),
                delivered_range=(min(rates), max(rates)),
                accepted_per_s=mean(r.accepted_per_s for r in runs),
                phigate_cpu_ms_per_message=mean(r.phigate_cpu_ms_per_message for r in runs),
                postgres_cpu_ms_per_message=_mean([r.postgres_cpu_ms_per_message for r in runs]),
                db_ms_per_message=_mean([r.db_ms_per_message for r in runs]),
                db_share_of_wall=_mean([r.db_share_of_wall for r in runs]),
                wal_ms_per_message=_mean([r.wal_ms_per_message for r in runs]),
                statements_per_message=_mean([r.statements_per_message for r in runs]),
                other_cpu_percent=mean(r.other_cpu_percent for r in runs),
                exactly_once=" ".join(exactly_once(r) for r in runs),
            )
        )
    return summaries


RATIOS = (("pg-2", "pg-1"), ("pg-1", "sqlite"))
# (title, Summary field, format); None shows as "-".
COLUMNS = (
    ("delivered/s", "delivered_per_s", ".0f"),
    ("accepted/s", "accepted_per_s", ".0f"),
    ("phigate CPU ms/msg", "phigate_cpu_ms_per_message", ".2f"),
    ("PG CPU ms/msg", "postgres_cpu_ms_per_message", ".2f"),
    ("DB ms/msg", "db_ms_per_message", ".2f"),
    ("DB % of wall", "db_share_of_wall", ".0%"),
    ("WAL ms/msg", "wal_ms_per_message", ".2f"),
    ("stmts/msg", "statements_per_message", ".1f"),
    ("other CPU %", "other_cpu_percent", ".0f"),
)


def ratios(summaries: Sequence[Summary]) -> dict[str, dict[str, float]]:
    """pg-2 / pg-1 and pg-1 / sqlite for each figure both have."""
    by_name = {s.configuration: s for s in summaries}
    found: dict[str, dict[str, float]] = {}
    for mine, theirs in RATIOS:
        if mine not in by_name or theirs not in by_name:
            continue
        pair: dict[str, float] = {}
        for _, attr, _ in COLUMNS:
            over, under = getattr(by_name[mine], attr), getattr(by_name[theirs], attr)
            if over is not None and under:
                pair[attr] = over / under
        found[f"{mine}/{theirs}"] = pair
    return found


def format_table(summaries: Sequence[Summary]) -> str:
    header = ("configuration", "runs", *(title for title, _, _ in COLUMNS), "exactly once")
    rows: list[tuple[str, ...]] = [header]
    for s in summaries:
        figures = []
        for _, attr, spec in COLUMNS:
            value = getattr(s, attr)
            figures.append("-" if value is None else format(value, spec))
        low, high = s.delivered_range
        if s.runs > 1:
            figures[0] += f" ({low:.0f}-{high:.0f})"
        rows.append((s.configuration, str(s.runs), *figures, s.exactly_once))
    for pair, found in ratios(summaries).items():
        shown = (f"{found[attr]:.2f}x" if attr in found else "-" for _, attr, _ in COLUMNS)
        rows.append((pair, "", *shown, ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(widths[i]) if i in (0, len(header) - 1) else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    )


def where_db_time_goes(results: Sequence[RunResult]) -> Iterator[str]:
    """Each PostgreSQL configuration's slowest statements, ms per message over its runs."""
    for name in CONFIGURATIONS:
        runs = [r for r in results if r.configuration == name and r.top_statements]
        if not runs:
            continue
        total: Counter[str] = Counter()
        for r in runs:
            total.update(r.top_statements)
        yield f"{name}: DB ms/msg of its slowest statements (mean over {len(runs)} runs):"
        for query, ms in total.most_common(5):
            yield f"  {ms / len(runs):6.3f}  {query}"


def notes(results: Sequence[RunResult]) -> Iterator[str]:
    for number, r in enumerate(results):
        where = f"run {number} ({r.configuration})"
        if r.refused or r.errors:
            yield f"{where}: not accepted: refused {r.refused or {}} errors {r.errors or {}}"
        if not r.stopped_cleanly:
            yield f"{where}: a node did not exit 0 after SIGTERM (see its phigate.log)"
        if not r.ok:
            yield (
                f"{where}: PROMISE BROKEN: accepted {r.accepted}, the sink got "
                f"{r.by_message_id} of them ({r.duplicates} more than once), "
                f"{r.undelivered_ids} accepted IDs not delivered, {r.queue_left} jobs queued"
            )


FOOTNOTES = (
    "DB ms/msg: pg_stat_statements' total_exec_time (statements in the server, lock waits "
    "included; not the round trips) over the messages delivered; % of wall: the same over the "
    "run's wall time (over 100%: statements of several connections overlap). WAL ms/msg: "
    "pg_stat_wal's write and sync time, which commits wait for after their COMMIT is timed.",
    "sqlite has no such figure: SQLite runs inside phigate's processes (the store's writer "
    "thread and its readers) and the store does not time its statements, so that time is "
    "part of phigate CPU ms/msg (its fsync waits are in no column).",
    "One machine: the nodes, PostgreSQL, the load generator and the sink share its cores, "
    "so a second node cannot add cores; pg-2/pg-1 shows what sharing the queue costs or "
    "gains here, not what a second machine would add. other CPU %: processes outside the "
    "benchmark during the run, in % of one core (contention the figures suffer).",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--messages",
        type=int,
        default=DEFAULT_MESSAGES,
        help=f"Messages per measured run (default {DEFAULT_MESSAGES}).",
    )
    parser.add_argument(
        "--sessions",
        type=int,
        default=DEFAULT_SESSIONS,
        help=f"Concurrent sessions, spread over the configuration's nodes "
        f"(default {DEFAULT_SESSIONS}).",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="A-B-C-C-B-A blocks (sqlite, pg-1, pg-2; default 1: each configuration twice).",
    )
    parser.add_argument("--time-limit", type=float, default=300.0, help="Seconds per run at most.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    args = parser.parse_args(argv)
    if not 1 <= args.messages <= 1_000_000:
        parser.error("--messages must be 1..1000000")
    if not 2 <= args.sessions <= 500:
        parser.error("--sessions must be 2..500 (two nodes get at least one each)")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be 1..20")
    if not 1.0 <= args.time_limit <= 3600.0:
        parser.error("--time-limit must be 1..3600 seconds")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    yardstick_before = calibrate()
    workdir = Path(tempfile.mkdtemp(prefix="phigate-scale-"))
    sink: PythonSink | None = None
    results: list[RunResult] = []
    try:
        with running_postgres(POSTGRES_SETTINGS) as server:
            prepare_database(server)
            (workdir / "sink").mkdir()
            sink = PythonSink(workdir / "sink", dump=workdir / "sink" / "dump")
            sink.start()
            configurations = make_configurations(workdir, sink.port, server)
            log(f"PostgreSQL on 127.0.0.1:{server.port}; sink 127.0.0.1:{sink.port}; {workdir}")
            for number, index in enumerate(plan(args.rounds)):
                configuration = configurations[index]
                result = measure(
                    configuration, sink, args.sessions, args.messages, f"run{number}",
                    args.time_limit,
                )  # fmt: skip
                results.append(result)
                db = (
                    f", DB {result.db_ms_per_message:.2f} ms/msg"
                    if result.db_ms_per_message is not None
                    else ""
                )
                log(
                    f"{configuration.name:6}: delivered {result.delivered_per_s:5.0f}/s, "
                    f"accepted {result.accepted_per_s:5.0f}/s, phigate "
                    f"{result.phigate_cpu_ms_per_message:.2f} CPU ms/msg{db}, other processes "
                    f"{result.other_cpu_percent:.0f}% of a core; sink got "
                    f"{result.by_message_id}/{result.accepted} by Message-ID, delivered by "
                    f"node {'+'.join(map(str, result.delivered_by_node))}"
                    + ("" if result.ok else "  <- PROBLEM")
                )
    except (BenchError, RuntimeError, psycopg.Error) as exc:
        log(f"bench: {exc}")
        return 2
    finally:
        if sink is not None:
            sink.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    yardstick_after = calibrate()
    print(
        f"{args.sessions} sessions, {args.messages} messages of 5 KB per run; "
        f"one server process per node"
    )
    print(format_table(summarise(results)))
    for line in FOOTNOTES:
        print(line)
    for line in where_db_time_goes(results):
        print(line)
    print(
        f"machine yardstick {yardstick_before:.0f}/{yardstick_after:.0f} ms "
        "(before/after, lower is faster)"
    )
    for note in notes(results):
        print(note)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
