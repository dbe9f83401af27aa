"""Consent registry benchmark: state look-ups with 1,000,000 records.

    .venv/bin/python bench/consent.py              # load, look-ups, relay with/without; ~4 min
    .venv/bin/python bench/consent.py --no-relay   # load and look-ups only, about 20 s

Loads the records (a bulk insert of generated rows) into a temporary SQLite
store, then times, one call at a time, the consent state of 1 and of 10
recipients: the SQL alone through the sqlite3 driver, `registry.states` on an
open connection (SQLAlchemy and the state rule), and `RegistryConsent.states`
as the server calls it (a pooled connection on a worker thread). Target: p99
under 1 ms. Then it runs bench/relay.py (10 sessions, plain listener) with and
without the records in phigate's store. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Table
from sqlalchemy.engine import make_url

from gateway.config import ConsentConfig, PurposeConfig
from gateway.consent import registry
from gateway.consent.source import RegistryConsent
from gateway.store.database import Database
from gateway.store.schema import consent_opt_outs, consent_records

BENCH_DIR = Path(__file__).resolve().parent
RECORDS = 1_000_000
RUNS = 5000
TARGET_P99_MS = 1.0
PURPOSE = "marketing/flu-clinic"
CONFIG = ConsentConfig(
    purposes={
        "flu-clinic": PurposeConfig(description="Flu clinic reminders"),
        "newsletter": PurposeConfig(description="Monthly newsletter"),
        "sponsored-trial": PurposeConfig(description="Paid by a sponsor", remunerated=True),
    }
)
_CHUNK = 50_000
_YEAR = 365 * 86400.0


def address(i: int) -> str:
    return f"patient{i:07d}@mail{i % 997}.example.org"


def _rows(n: int, now: float, seed: int) -> Iterator[tuple[Table, tuple[Any, ...]]]:
    """n records: one grant per address for 4/5 of them (30% linked to a patient id, half
    expiring), then revocations (by address, a tenth by patient id) and opt-outs."""
    rng = random.Random(seed)
    addresses = max(1, n * 4 // 5)
    subs = ("flu-clinic", "newsletter")
    for i in range(min(n, addresses)):
        granted = now - rng.uniform(0, 3 * _YEAR)
        purpose = f"marketing/{subs[i % 2]}" if i % 4 == 0 else "marketing"
        yield (
            consent_records,
            (
                "grant",
                address(i),
                f"P{i // 2:07d}" if i % 10 < 3 else None,
                purpose,
                granted,
                granted + 2 * _YEAR if i % 2 else None,
                "import",
                f"ehr-doc-{i}",
                False,
                False,
                "bench",
                now,
            ),
        )
    for j in range(n - addresses):
        target = rng.randrange(addresses)
        if j % 10 < 5 or j % 10 == 9:
            by_patient = j % 10 == 9
            yield (
                consent_records,
                (
                    "revoke",
                    None if by_patient else address(target),
                    f"P{target // 2:07d}" if by_patient else None,
                    "marketing",
                    now - rng.uniform(0, _YEAR),
                    None,
                    "web_form",
                    None,
                    False,
                    False,
                    "bench",
                    now,
                ),
            )
        else:
            purpose = "marketing" if j % 2 else PURPOSE
            row = ("opt_out", address(target), purpose, "unsubscribe", None, "bench", now)
            yield consent_opt_outs, row


def load_records(db_url: str, n: int, seed: int = 7) -> float:
    """Bulk-insert n generated records into the (SQLite) store at db_url; returns seconds."""
    if make_url(db_url).get_backend_name() != "sqlite":
        raise SystemExit("the consent benchmark loads records into SQLite stores only")
    db = Database(db_url)
    try:
        db.migrate()
        started = time.perf_counter()
        pending: dict[Table, list[tuple[Any, ...]]] = {consent_records: [], consent_opt_outs: []}
        with db.transaction() as conn:

            def flush(table: Table) -> None:
                columns = [c.name for c in table.columns if c.name != "id"]
                conn.exec_driver_sql(
                    f"INSERT INTO {table.name} ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})",
                    pending[table],
                )
                pending[table].clear()

            for table, row in _rows(n, time.time(), seed):
                pending[table].append(row)
                if len(pending[table]) >= _CHUNK:
                    flush(table)
            for table in pending:
                if pending[table]:
                    flush(table)
        return time.perf_counter() - started
    finally:
        db.close()


# --- timing -----------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100.0 * len(ordered))) - 1]


@dataclass(frozen=True)
class Result:
    what: str
    recipients: int
    runs: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def _summary(what: str, recipients: int, times_ns: list[int]) -> Result:
    ms = [t / 1e6 for t in times_ns]
    return Result(what, recipients, len(ms), percentile(ms, 50), percentile(ms, 99), max(ms))


def _recipient_sets(n_addresses: int, size: int, runs: int, seed: int) -> list[list[str]]:
    """Known addresses, and one in ten unknown (no record)."""
    rng = random.Random(seed + size)
    return [
        [
            address(rng.randrange(n_addresses)) if rng.random() < 0.9 else f"new{k}@x.example"
            for k in range(size)
        ]
        for _ in range(runs)
    ]


def _timed(call: Callable[[list[str]], object], sets: list[list[str]]) -> list[int]:
    for recipients in sets[: len(sets) // 10]:  # warm-up: caches, pages, compiled SQL
        call(recipients)
    gc.collect()
    times: list[int] = []
    for recipients in sets:
        start = time.perf_counter_ns()
        call(recipients)
        times.append(time.perf_counter_ns() - start)
    return times


def _driver_statement(db: Database, size: int) -> tuple[str, Callable[[list[str]], list[Any]]]:
    """The states query as the driver receives it for `size` addresses, and a function
    giving its positional parameters for a list of addresses."""
    statement = registry.STATES_QUERY.params(addresses=[f"a{i}@x.example" for i in range(size)])
    compiled = statement.compile(
        dialect=db.read_engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    names = compiled.positiontup or []
    fixed = {name: bind.value for name, bind in compiled.binds.items()}

    def parameters(recipients: list[str]) -> list[Any]:
        # Expanded names are addresses_1, addresses_2, ... in list order.
        return [
            recipients[int(name.rsplit("_", 1)[1]) - 1]
            if name.startswith("addresses_")
            else fixed[name]
            for name in names
        ]

    return str(compiled), parameters


def measure(db_path: Path, n_addresses: int, runs: int) -> list[Result]:
    db = Database(f"sqlite:///{db_path}")
    results: list[Result] = []
    try:
        raw = sqlite3.connect(db_path)
        try:
            for size in (1, 10):
                sql, parameters = _driver_statement(db, size)

                def driver(
                    recipients: list[str],
                    sql: str = sql,
                    parameters: Callable[[list[str]], list[Any]] = parameters,
                ) -> object:
                    return raw.execute(sql, parameters(recipients)).fetchall()

                sets = _recipient_sets(n_addresses, size, runs, 1)
                results.append(_summary("SQL via sqlite3", size, _timed(driver, sets)))
        finally:
            raw.close()
        with db.reading() as conn:
            for size in (1, 10):

                def direct(recipients: list[str]) -> object:
                    return registry.states(conn, recipients, PURPOSE, time.time(), CONFIG)

                sets = _recipient_sets(n_addresses, size, runs, 2)
                results.append(_summary("registry.states", size, _timed(direct, sets)))
        results.extend(_run_like_the_server(_measure_source(db, n_addresses, runs)))
    finally:
        db.close()
    return results


def _run_like_the_server(coroutine: Coroutine[Any, Any, list[Result]]) -> list[Result]:
    """Run on uvloop, as `phigate serve` does where it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def _measure_source(db: Database, n_addresses: int, runs: int) -> list[Result]:
    source = RegistryConsent(db, CONFIG)
    results = []
    for size in (1, 10):
        sets = _recipient_sets(n_addresses, size, runs, 3)
        for recipients in sets[: runs // 10]:
            await source.states(recipients, PURPOSE)
        gc.collect()
        times: list[int] = []
        for recipients in sets:
            start = time.perf_counter_ns()
            await source.states(recipients, PURPOSE)
            times.append(time.perf_counter_ns() - start)
        results.append(_summary("RegistryConsent.states", size, times))
    return results


def query_plan(db_path: Path) -> list[str]:
    db = Database(f"sqlite:///{db_path}")
    try:
        sql, parameters = _driver_statement(db, 2)
    finally:
        db.close()
    with sqlite3.connect(db_path) as raw:
        rows = raw.execute("EXPLAIN QUERY PLAN " + sql, parameters(["a@x.example", "b@x.example"]))
        return [str(row[-1]) for row in rows]


def relay(records: int) -> dict[str, Any]:
    """bench/relay.py, 10 sessions on the plain listener, with `records` preloaded."""
    command = [
        sys.executable,
        str(BENCH_DIR / "relay.py"),
        "--sessions",
        "10",
        "--listeners",
        "plain",
        "--json",
    ]
    if records:
        command += ["--consent-records", str(records)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"bench/relay.py failed ({done.returncode}):\n{done.stderr[-2000:]}")
    run = json.loads(done.stdout)["runs"][0]
    return {k: run[k] for k in ("accepted_per_s", "delivered_per_s", "p50_ms", "p99_ms")}


def table(results: Sequence[Result]) -> str:
    lines = [
        "| what | recipients | runs | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.what} | {r.recipients} | {r.runs} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | "
        f"{r.max_ms:.3f} |"
        for r in results
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=RECORDS, help="records to load")
    parser.add_argument("--runs", type=int, default=RUNS, help="timed calls per case")
    parser.add_argument(
        "--no-relay", dest="relay", action="store_false", help="skip the relay benchmark"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.records <= 10_000_000 or not 100 <= args.runs <= 1_000_000:
        parser.error("--records must be 1..10000000 and --runs 100..1000000")
    with tempfile.TemporaryDirectory(prefix="phigate-consent-bench-") as work:
        db_path = Path(work) / "phigate.db"
        seconds = load_records(f"sqlite:///{db_path}", args.records)
        print(
            f"Loaded {args.records:,} records in {seconds:.1f} s "
            f"({args.records / seconds:,.0f}/s); store {db_path.stat().st_size / 2**20:.0f} MB. "
            f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}."
        )
        print("Query plan: " + "; ".join(query_plan(db_path)))
        results = measure(db_path, max(1, args.records * 4 // 5), args.runs)
    print(table(results))
    worst = max(r.p99_ms for r in results if r.what == "RegistryConsent.states")
    verdict = "met" if worst < TARGET_P99_MS else "NOT met"
    print(
        f"Target: RegistryConsent.states p99 under {TARGET_P99_MS:g} ms: {verdict} ({worst:.3f} ms)"
    )
    if args.relay:
        print("Relay benchmark (10 sessions, plain listener), about a minute each ...", flush=True)
        without = relay(0)
        with_records = relay(args.records)
        for label, figures in (
            ("without records", without),
            (f"{args.records:,} records", with_records),
        ):
            print(
                f"relay, {label}: accepted {figures['accepted_per_s']:.0f}/s, delivered "
                f"{figures['delivered_per_s']:.0f}/s, accept p50 {figures['p50_ms']:.1f} ms, "
                f"p99 {figures['p99_ms']:.1f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
