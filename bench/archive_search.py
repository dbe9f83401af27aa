"""Archive search benchmark: p50/p99 of `phigate archive search` over 1,000,000 messages.

    .venv/bin/python bench/archive_search.py                  # SQLite, 1,000,000 messages
    .venv/bin/python bench/archive_search.py --messages 100000 --runs 20   # a quick look
    .venv/bin/python bench/archive_search.py --db-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
    .venv/bin/python bench/archive_search.py --plans          # and each search's query plan

It migrates a fresh store (SQLite in a temporary directory, or the empty
database --db-url names), drops the archive's indexes, writes N archived
messages straight into `archived_messages` and `archived_recipients` with
SQLAlchemy core, and builds the indexes again (as after a restore). The
metadata is realistic, the ciphertext is not (64 random bytes): about 2,000
senders in 20 of the organisation's domains, 50,000 recipients over 500
domains (both skewed: a few send or receive most), 1 to 3 recipients per
message, received over 6 years, 10% of the oldest destroyed. PostgreSQL is
ANALYZEd after the load (its autovacuum would); SQLite is not, as on a live
install.

Then it times the searches an auditor runs, each through the query
`phigate archive search` runs (gateway.archive.search: the newest 100 and
their recipients), with a fresh random parameter per run, and prints p50 and
p99 in ms.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import accumulate
from pathlib import Path
from typing import Any

from relay import percentile
from sqlalchemy import Connection, insert, text

from gateway.archive import search
from gateway.archive.search import Filters
from gateway.store.database import Database
from gateway.store.schema import archived_messages, archived_recipients

YEARS = 6
START = 1_600_000_000.0  # 2020-09-13
SPAN = YEARS * 365 * 86400.0
_BATCH = 20_000
CATEGORIES = (("treatment", 50), ("operations", 25), ("payment", 15), ("marketing", 10))


class Mix:
    """Random but skewed metadata, reproducible from a seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.domains = [f"d{n:03d}.example" for n in range(500)]
        ours = self.domains[:20]
        self.senders = [f"staff{n:04d}@{ours[n % len(ours)]}" for n in range(2000)]
        self.recipients = [
            f"p{n:05d}@{self.domains[int(len(self.domains) * (n / 50_000) ** 2)]}"
            for n in range(50_000)
        ]
        self.principals = [f"app{n:02d}" for n in range(40)]
        # Cumulative weights, so that each choice is a bisection, not a sum.
        self._senders_cum = list(accumulate(1 / (n + 1) ** 0.7 for n in range(2000)))
        self._recipients_cum = list(accumulate(1 / (n + 1) ** 0.5 for n in range(50_000)))
        self._categories_cum = list(accumulate(w for _, w in CATEGORIES))

    def sender(self) -> str:
        return self.rng.choices(self.senders, cum_weights=self._senders_cum)[0]

    def recipients_of(self) -> list[str]:
        count = self.rng.choice((1, 1, 1, 2, 3))
        chosen = self.rng.choices(self.recipients, cum_weights=self._recipients_cum, k=count)
        return list(dict.fromkeys(chosen))

    def category(self) -> str:
        return self.rng.choices([c for c, _ in CATEGORIES], cum_weights=self._categories_cum)[0]


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def generate(mix: Mix, count: int) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(message row, its recipient rows), oldest first."""
    rng = mix.rng
    step = SPAN / count
    for n in range(count):
        queue_id = f"{n:08X}{rng.getrandbits(32):08X}"
        received_at = START + n * step + rng.uniform(0, step)
        sender = mix.sender()
        destroyed = n < count // 10
        row = {
            "queue_id": queue_id,
            "kind": "message",
            "received_at": received_at,
            "message_id": f"<{n}.{rng.getrandbits(40):x}@{_domain(sender)}>",
            "principal": mix.principals[n % len(mix.principals)],
            "sender": sender,
            "sender_domain": _domain(sender),
            "category": mix.category(),
            "phi": rng.random() < 0.4,
            "size": rng.randrange(2_000, 2_000_000),
            "sha256": os.urandom(32).hex(),
            "storage": "database",
            "object_key": None,
            "key_id": "m-bench",
            "wrapped_key": None if destroyed else os.urandom(60),
            "content": None if destroyed else os.urandom(64),
            "destroyed_at": received_at + 2 * 365 * 86400 if destroyed else None,
            "destruction_id": None,
        }
        yield (
            row,
            [
                {"queue_id": queue_id, "recipient": r, "domain": _domain(r)}
                for r in mix.recipients_of()
            ],
        )


def _indexes() -> list[Any]:
    return [*archived_messages.indexes, *archived_recipients.indexes]


def build(url: str, count: int, seed: int) -> tuple[Database, float]:
    db = Database(url)
    db.migrate()
    started = time.perf_counter()
    with db.write_engine.begin() as conn:
        for index in _indexes():
            index.drop(conn)
        messages: list[dict[str, Any]] = []
        recipients: list[dict[str, Any]] = []
        for row, rows in generate(Mix(seed), count):
            messages.append(row)
            recipients.extend(rows)
            if len(messages) >= _BATCH:
                conn.execute(insert(archived_messages), messages)
                conn.execute(insert(archived_recipients), recipients)
                messages.clear()
                recipients.clear()
        if messages:
            conn.execute(insert(archived_messages), messages)
            conn.execute(insert(archived_recipients), recipients)
        for index in _indexes():
            index.create(conn)
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE archived_messages"))
            conn.execute(text("ANALYZE archived_recipients"))
    db.checkpoint()
    return db, time.perf_counter() - started


def cases(conn: Connection, rng: random.Random) -> dict[str, Callable[[], Filters]]:
    """Each common search, with a fresh random parameter per run."""
    picked = conn.execute(
        text("SELECT message_id FROM archived_messages ORDER BY random() LIMIT 2000")
    ).scalars()
    message_ids = list(picked)
    mix = Mix(rng.randrange(1 << 30))

    def moment(days: float) -> float:
        return START + rng.uniform(0, SPAN - days * 86400)

    def within(days: float, filters: Filters) -> Filters:
        since = moment(days)
        return replace(filters, since=since, until=since + days * 86400)

    return {
        "recipient": lambda: Filters(recipient=rng.choice(mix.recipients)),
        "sender + 1 year": lambda: within(365, Filters(sender=mix.sender())),
        "domain + 30 days": lambda: within(30, Filters(domain=rng.choice(mix.domains))),
        "domain + 1 year, PHI": lambda: within(
            365, Filters(domain=rng.choice(mix.domains), phi=True)
        ),
        "message-id": lambda: Filters(message_id=rng.choice(message_ids)),
        "1 day": lambda: within(1, Filters()),
        "principal + 1 week": lambda: within(7, Filters(principal=rng.choice(mix.principals))),
    }


def plan(conn: Connection, filters: Filters) -> str:
    """The database's plan for a search, one step a line."""
    statement = search.statement(filters, 100)
    compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
        return "\n".join(f"    {row[-1]}" for row in rows)
    rows = conn.exec_driver_sql(f"EXPLAIN {compiled}").all()
    return "\n".join(f"    {row[0]}" for row in rows)


def run(db: Database, runs: int, seed: int, plans: bool) -> list[tuple[str, list[float], int]]:
    rng = random.Random(seed + 1)
    results = []
    with db.reading() as conn:
        for name, make in cases(conn, rng).items():
            times: list[float] = []
            found = 0
            for _ in range(runs):
                filters = make()
                started = time.perf_counter()
                found += len(search.search(conn, search.statement(filters, 100)))
                times.append((time.perf_counter() - started) * 1000)
            results.append((name, times, found // runs))
            if plans:
                print(f"{name}:\n{plan(conn, make())}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=100, help="timed runs per search")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db-url", help="an empty PostgreSQL database instead of SQLite")
    parser.add_argument("--plans", action="store_true", help="print each search's query plan")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="phigate-archive-bench-") as tmp:
        url = args.db_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        db, took = build(url, args.messages, args.seed)
        try:
            print(
                f"{args.messages:,} archived messages written and indexed in {took:.1f} s "
                f"({db.write_engine.dialect.name})"
            )
            results = run(db, args.runs, args.seed, args.plans)
            print(f"{'search (newest 100)':<24} {'p50':>7} {'p99':>7}  ms   found (mean)")
            for name, times, found in results:
                print(
                    f"{name:<24} {percentile(times, 50):>7.2f} {percentile(times, 99):>7.2f}"
                    f"      {found:>5}"
                )
        finally:
            db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
