"""Audit search benchmark: p50/p99 of the common searches over 1,000,000 events.

    .venv/bin/python bench/audit_search.py                 # 1,000,000 events, 100 runs each
    .venv/bin/python bench/audit_search.py --events 100000 --runs 20   # a quick look

It migrates a fresh SQLite store in a temporary directory, writes N synthetic
events straight into `audit_events` and `audit_recipients` with SQLAlchemy
core (the search keys and recipient rows derived by gateway.store.audit_facets,
as the indexer derives them), except the newest `--pending` ones, which are
written as `trail.append` writes them (no search keys) and then indexed by
the indexer (gateway.audit.indexer.catch_up, as a search does first, timed:
events per second with every index in place). Then it times each common
search through the query layer `phigate audit search` and `audit show` use
(gateway.audit.search): the first page (100 events), the next page (from
the first page's cursor, when there is one) and the count by kind, each
with fresh random parameters per run. It prints p50/p99 in ms.

The chain is synthetic: each event carries a random hash, so `audit verify`
would reject this trail; it is a search benchmark, and search never reads
hashes. The indexes are dropped for the bulk insert and built afterwards
(as after a restore); no ANALYZE is run, as on a live install.

The mix, over 30 days: per message an AUTH (most), one policy decision per
recipient (1-3 recipients), accepted, a delivery attempt per recipient (some
deferred first, a few bounced, with their DSN), portal events for a share of
them; plus AUTH failures and admin changes. 60 principals and 3,000 recipient
domains, both skewed (a few send or receive most), 25 rules, modes tls,
standard, smime and portal.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from relay import percentile
from sqlalchemy import Connection, insert, text, update

from gateway.audit import indexer, search
from gateway.audit.search import Filters
from gateway.audit.timeline import timeline
from gateway.store import audit_facets as facets
from gateway.store.audit_key import AuditKey
from gateway.store.database import Database
from gateway.store.schema import audit_events, audit_index_mark, audit_recipients

DAYS = 30
START = 1_780_000_000.0
_BATCH = 20_000
CONSUMER = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com")
MODES = (("tls", 55), ("standard", 25), ("smime", 10), ("portal", 10))
OUTCOMES = {"delivered": (250, "2.0.0"), "deferred": (451, "4.4.1"), "bounced": (550, "5.1.1")}
VERIFY = (("pkix", 40), ("mta-sts", 15), ("dane-ee", 10), ("dane-ta", 3), ("pin", 2), ("no", 30))


class Mix:
    """Random but skewed choices, reproducible from a seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.principals = [f"app{n:02d}" for n in range(60)]
        self.domains = list(CONSUMER) + [f"clinic{n:04d}.example" for n in range(3000)]
        self.rules = ["defaults"] + [f"rule-{n:02d}" for n in range(24)]
        self._principal_weights = [1 / (n + 1) for n in range(len(self.principals))]
        self._domain_weights = [1 / (n + 1) ** 0.9 for n in range(len(self.domains))]
        self._rule_weights = [1 / (n + 1) for n in range(len(self.rules))]

    def principal(self) -> str:
        return self.rng.choices(self.principals, self._principal_weights)[0]

    def domain(self) -> str:
        return self.rng.choices(self.domains, self._domain_weights)[0]

    def rule(self) -> str:
        return self.rng.choices(self.rules, self._rule_weights)[0]

    def weighted(self, table: tuple[tuple[str, int], ...]) -> str:
        return self.rng.choices([k for k, _ in table], [w for _, w in table])[0]

    def recipient(self) -> str:
        return f"p{self.rng.randrange(200_000)}@{self.domain()}"


def _event(ts: float, event: str, result: str, **fields: Any) -> dict[str, Any]:
    recipients = fields.pop("recipients", ())
    row = {
        "ts": ts, "event": event, "result": result, "queue_id": None, "principal": None,
        "client_ip": None, "sender": None, "size": None, "code": None, "detail": None,
        "actor": None, **fields, "recipients": json.dumps(list(recipients)),
        "prev_hash": "0" * 64, "hash": os.urandom(32).hex(), "chain_version": 2,
    }  # fmt: skip
    row.update(facets.facets(event, row["detail"]).columns())
    row["_rcpts"] = recipients
    return row


def _attempt(mix: Mix, ts: float, event: str, base: dict[str, Any], rcpt: str) -> dict[str, Any]:
    mode = mix.weighted(MODES)
    code, status = OUTCOMES[event]
    tls = ""
    if mode != "portal" and mix.rng.random() < 0.97:
        tls = (
            f" tls=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 cert=sha256:{'ab' * 32} "
            f"verify={mix.weighted(VERIFY)}"
        )
    detail = f"mode={mode}{tls} mx=mx.{rcpt.rpartition('@')[2]}: {code} {status} ok"[:255]
    return _event(ts, event, status, **base, recipients=(rcpt,), code=code, detail=detail)


def _message(mix: Mix, n: int, ts: float) -> Iterator[dict[str, Any]]:
    """The events of one message's life."""
    queue_id = f"{n:020X}Q"
    principal = mix.principal()
    ip = f"10.0.{n % 200}.{n % 250 + 1}"
    sender = f"noreply@{principal}.clinic.example"
    rcpts = [mix.recipient() for _ in range(mix.rng.choice((1, 1, 1, 1, 2, 3)))]
    if mix.rng.random() < 0.8:
        yield _event(ts, "auth", "ok", principal=principal, client_ip=ip, code=235)
    base = {"queue_id": queue_id, "principal": principal, "sender": sender}
    phi = "yes" if mix.rng.random() < 0.4 else "no"
    version = str(40 + int((ts - START) / (DAYS * 86400) * 6))
    for rcpt in rcpts:
        detail = (
            f"policy={version} category=clinical rule={mix.rule()} consent=not-needed "
            f"via=tls,portal phi={phi}"
        )
        yield _event(
            ts, "policy", "deliver", **base, client_ip=ip, recipients=(rcpt,), detail=detail
        )
    yield _event(
        ts, "accepted", "queued", **base, client_ip=ip, recipients=tuple(rcpts),
        size=mix.rng.randrange(2_000, 2_000_000), code=250,
        detail=f"message-id=<{n}.{principal}@clinic.example>",
    )  # fmt: skip
    for rcpt in rcpts:
        at = ts + mix.rng.uniform(1, 30)
        if mix.rng.random() < 0.08:
            yield _attempt(mix, at, "deferred", base, rcpt)
            at += 300
        if mix.rng.random() < 0.02:
            yield _attempt(mix, at, "bounced", base, rcpt)
            dsn = f"{n:020X}D"
            yield _event(
                at, "dsn", "queued", queue_id=dsn, sender="", recipients=(sender,), size=3000,
                detail=f"for {queue_id}",
            )  # fmt: skip
            continue
        yield _attempt(mix, at, "delivered", base, rcpt)
        if mix.rng.random() < 0.05:
            for kind in ("portal_stored", "portal_link_opened", "portal_viewed"):
                at += mix.rng.uniform(60, 86400)
                yield _event(at, kind, "ok", queue_id=queue_id, recipients=(rcpt,), client_ip=ip)


def _noise(mix: Mix, ts: float) -> dict[str, Any]:
    if mix.rng.random() < 0.9:
        return _event(
            ts, "auth", "failed", principal=mix.principal(), client_ip="203.0.113.9", code=535
        )
    return _event(ts, "principal", "from_domains", principal=mix.principal(), actor="cli:alice")


def generate(mix: Mix, count: int) -> Iterator[dict[str, Any]]:
    """`count` events in time order (by message start), with ids from 1."""
    n = 0
    made = 0
    step = DAYS * 86400 / (count / 4.2)  # about 4.2 events per message
    while made < count:
        ts = START + n * step
        batch = [_noise(mix, ts)] if mix.rng.random() < 0.03 else list(_message(mix, n, ts))
        for row in batch[: count - made]:
            made += 1
            row["id"] = made
            yield row
        n += 1


def fill(conn: Connection, rows: Iterator[dict[str, Any]], indexed_through: int) -> None:
    """Write the events; those after `indexed_through` as appending does, unindexed."""
    events: list[dict[str, Any]] = []
    recipients: list[dict[str, object]] = []
    for row in rows:
        listed = row.pop("_rcpts")
        if row["id"] <= indexed_through:
            recipients.extend(facets.recipient_rows(row["id"], listed))
        else:
            row.update(dict.fromkeys(facets.COLUMNS))
        events.append(row)
        if len(events) >= _BATCH:
            conn.execute(insert(audit_events), events)
            if recipients:
                conn.execute(insert(audit_recipients), recipients)
            events.clear()
            recipients.clear()
    if events:
        conn.execute(insert(audit_events), events)
    if recipients:
        conn.execute(insert(audit_recipients), recipients)
    conn.execute(update(audit_index_mark).values(event_id=indexed_through))


def _indexes() -> list[Any]:
    return [*audit_events.indexes, *audit_recipients.indexes]


def build(url: str, count: int, pending: int, seed: int) -> tuple[Database, float]:
    db = Database(url, audit_key=AuditKey(os.urandom(32)))
    db.migrate()
    started = time.perf_counter()
    with db.write_engine.begin() as conn:
        for index in _indexes():
            index.drop(conn)
        fill(conn, generate(Mix(seed), count), count - pending)
        for index in _indexes():
            index.create(conn)
    db.checkpoint()  # searches read the database file, not a WAL as large as it
    return db, time.perf_counter() - started


def index_pending(db: Database) -> tuple[int, float]:
    """What the indexer does before a search: (events indexed, seconds)."""
    started = time.perf_counter()
    done = indexer.catch_up(db)
    took = time.perf_counter() - started
    db.checkpoint()
    return done, took


def _sample(conn: Connection, sql: str) -> list[Any]:
    return list(conn.execute(text(sql)).scalars())


def cases(conn: Connection, rng: random.Random) -> dict[str, Callable[[], Filters]]:
    """Each common search, with a fresh random parameter per run."""
    queue_ids = _sample(
        conn, "SELECT queue_id FROM audit_events WHERE event = 'accepted' LIMIT 5000"
    )
    message_ids = _sample(
        conn, "SELECT message_id FROM audit_events WHERE message_id IS NOT NULL LIMIT 5000"
    )
    recipients = _sample(conn, "SELECT recipient FROM audit_recipients LIMIT 5000")
    mix = Mix(rng.randrange(1 << 30))
    day = 86400.0

    def moment() -> float:
        return START + rng.uniform(0, (DAYS - 1) * day)

    def one_day() -> Filters:
        since = moment()
        return Filters(since=since, until=since + day)

    def delivered_day() -> Filters:
        since = moment()
        return Filters(since=since, until=since + day, events=("delivered",))

    return {
        "time range (1 day)": one_day,
        "queue id": lambda: Filters(queue_id=rng.choice(queue_ids)),
        "message-id": lambda: Filters(message_id=rng.choice(message_ids)),
        "principal": lambda: Filters(principal=mix.principal()),
        "principal + 1 day": lambda: Filters(
            principal=mix.principal(), since=(s := moment()), until=s + day
        ),
        "recipient": lambda: Filters(recipient=rng.choice(recipients)),
        "recipient domain": lambda: Filters(recipient_domain=mix.domain()),
        "event kind + 1 day": delivered_day,
        "rule": lambda: Filters(rule=mix.rule()),
        "mode": lambda: Filters(mode=mix.weighted(MODES)),
        "tls kind": lambda: Filters(tls=rng.choice(facets.TLS_KINDS)),
        "mode + tls + 1 week": lambda: Filters(
            mode="tls", tls="none", since=(s := moment()), until=s + 7 * day
        ),
    }


def _timed(fn: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000


def _show(conn: Connection, queue_id: str) -> dict[str, Any]:
    """What `phigate audit show --json` computes."""
    return timeline(queue_id, search.of_message(conn, queue_id)).as_json()


Timings = tuple[str, list[float], list[float], list[float]]  # first page, next page, count


def run(db: Database, runs: int, seed: int) -> list[Timings]:
    rng = random.Random(seed + 1)
    results = []
    with db.reading() as conn:
        chosen = cases(conn, rng)
        queue_ids = _sample(
            conn, "SELECT queue_id FROM audit_events WHERE event = 'accepted' LIMIT 5000"
        )
        for name, make in chosen.items():
            pages: list[float] = []
            nexts: list[float] = []
            counts: list[float] = []
            for _ in range(runs):
                filters = make()
                started = time.perf_counter()
                page = search.search(conn, filters, 100)
                pages.append((time.perf_counter() - started) * 1000)
                if page.next_after is not None:
                    nexts.append(_timed(search.search, conn, filters, 100, page.next_after))
                counts.append(_timed(search.summary, conn, filters))
            results.append((name, pages, nexts, counts))
        shows = [_timed(_show, conn, rng.choice(queue_ids)) for _ in range(runs)]
        results.append(("audit show (timeline)", shows, [], []))
    return results


def _figures(times: list[float]) -> str:
    if not times:
        return f"{'-':>7} {'-':>7}"
    return f"{percentile(times, 50):>7.2f} {percentile(times, 99):>7.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=100, help="timed runs per search")
    parser.add_argument(
        "--pending",
        type=int,
        default=50_000,
        help="newest events left to the indexer, which is timed (default 50,000)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the database in this directory")
    args = parser.parse_args()
    if not 0 <= args.pending <= args.events:
        parser.error("--pending must be 0..--events")
    with tempfile.TemporaryDirectory(prefix="phigate-audit-bench-") as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{where / 'bench.db'}"
        db, took = build(url, args.events, args.pending, args.seed)
        try:
            indexed, indexing = index_pending(db)
            size = (where / "bench.db").stat().st_size / 1e6
            print(
                f"{args.events:,} events written and indexed in {took:.1f} s; "
                f"database {size:.0f} MB"
            )
            if indexed:
                print(
                    f"indexer: the newest {indexed:,} events indexed in {indexing:.2f} s, "
                    f"{indexed / indexing:,.0f} events/s (batches of {indexer.BATCH})"
                )
            print(f"{'search':<24} {'first page':>15} {'next page':>15} {'count by kind':>15}")
            print(f"{'':<24} {'p50':>7} {'p99':>7} {'p50':>7} {'p99':>7} {'p50':>7} {'p99':>7}  ms")
            for name, *times in run(db, args.runs, args.seed):
                print(f"{name:<24} " + " ".join(_figures(t) for t in times))
        finally:
            db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
