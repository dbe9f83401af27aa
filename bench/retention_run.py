"""A retention run over a large archive: messages destroyed per second, and the run's time.

    PYTHONPATH=$PWD .venv/bin/python bench/retention_run.py [--count 1000000]
        [--batch 1000] [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/DB]

Fills the archive with bulk inserts of realistic metadata (principals,
categories, one or two recipients) and a small fake ciphertext per message,
received 5 to 10 years ago; a standing legal hold covers one principal's
mail (about 3 %), and one principal's mail is kept forever. Then one run as
`phigate retention run` makes it: oldest first, a batch per transaction,
each transaction shredded (SQLite: secure_delete, then a truncating WAL
checkpoint). See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, insert, select

from gateway.archive import destruction, holds
from gateway.archive.rules_file import parse_schedule
from gateway.archive.storage import DatabaseStorage
from gateway.store.audit_key import AuditKey
from gateway.store.database import Database
from gateway.store.schema import archived_messages, archived_recipients

YEAR = 365.25 * 86400
FILL_CHUNK = 20_000
RULES = """\
version: 1
rules:
  - name: marketing
    match: {category: marketing, phi: false}
    keep: 2y
  - name: legal-forever
    match: {principal: legal}
    keep: forever
default:
  keep: 6y
"""
# 33 principals: "held" (a hold covers it) and "legal" (kept forever) are one each.
PRINCIPALS = ["held", "legal", *(f"ehr{n}" for n in range(31))]
CATEGORIES = ["treatment"] * 5 + ["payment"] * 2 + ["operations", "marketing", "transactional"]


def _fill(db: Database, count: int, now: float) -> None:
    rng = random.Random(7)
    ciphertext = os.urandom(256)  # what the sealed copy of a small message weighs
    wrapped = os.urandom(60)
    for start in range(0, count, FILL_CHUNK):
        messages, recipients = [], []
        for n in range(start, min(start + FILL_CHUNK, count)):
            queue_id = f"{n:020X}"
            principal = PRINCIPALS[n % len(PRINCIPALS)]
            category = rng.choice(CATEGORIES)
            sender_domain = f"clinic{n % 50}.example"
            messages.append(
                {
                    "queue_id": queue_id,
                    "kind": "message",
                    "received_at": now - 5 * YEAR - rng.random() * 5 * YEAR,
                    "message_id": f"<{queue_id.lower()}@{sender_domain}>",
                    "principal": principal,
                    "sender": f"{principal}@{sender_domain}",
                    "sender_domain": sender_domain,
                    "category": category,
                    "phi": category != "marketing",
                    "size": 2000 + n % 30_000,
                    "sha256": f"{n:064x}",
                    "storage": "database",
                    "object_key": None,
                    "key_id": "mk-bench",
                    "wrapped_key": wrapped,
                    "content": ciphertext,
                }
            )
            for r in range(1 + n % 2):
                domain = f"patients{(n + r) % 200}.example"
                recipients.append(
                    {"queue_id": queue_id, "recipient": f"p{n}-{r}@{domain}", "domain": domain}
                )
        with db.transaction() as conn:
            conn.execute(insert(archived_messages), messages)
            conn.execute(insert(archived_recipients), recipients)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=destruction.BATCH)
    parser.add_argument("--database-url", help="An empty database (default: SQLite in a temp dir).")
    args = parser.parse_args()
    if not 1000 <= args.count <= 10_000_000:
        parser.error("--count must be 1000..10000000")
    with tempfile.TemporaryDirectory(prefix="phigate-retention-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'phigate.db'}"
        db = Database(url, audit_key=AuditKey(os.urandom(32)))
        db.migrate()
        now = time.time()
        started = time.monotonic()
        _fill(db, args.count, now)
        filled = time.monotonic() - started
        if db.dialect == "postgresql":  # the statistics autovacuum keeps for a real table
            with db.transaction() as conn:
                conn.exec_driver_sql("ANALYZE archived_messages")
        with db.transaction() as conn:
            holds.place(
                conn, "BENCH-1", "bench", holds.Selector(principal="held"), "cli:bench", now
            )
        schedule = parse_schedule(RULES, "bench")
        outcome = destruction.run(
            db.transaction, schedule, now, "cli:bench", batch=args.batch, storage=DatabaseStorage()
        )
        # The next run, with nothing more due: what every scheduled run spends on the
        # messages it examines and keeps (held, kept forever, not due yet).
        again = destruction.run(
            db.transaction, schedule, now, "cli:bench", batch=args.batch, storage=DatabaseStorage()
        )
        with db.reading() as conn:
            left = conn.execute(
                select(func.count()).where(archived_messages.c.wrapped_key.is_not(None))
            ).scalar_one()
        db.close()
        size = sum(p.stat().st_size for p in Path(tmp).glob("phigate.db*"))
    destroyed = outcome.destroyed_count
    print(f"archive: {args.count} messages, filled in {filled:.1f} s ({url.split(':')[0]})")
    print(
        f"run: examined {outcome.examined}, destroyed {destroyed}, held {outcome.held}, "
        f"kept {left} in all, {len(outcome.record_ids)} destruction records"
    )
    print(
        f"run time {outcome.seconds:.1f} s: {destroyed / outcome.seconds:,.0f} messages "
        f"destroyed per second (batch {args.batch})"
    )
    print(
        f"next run, nothing due: examined {again.examined} in {again.seconds:.1f} s "
        f"({again.examined / again.seconds:,.0f} messages examined per second)"
    )
    if not args.database_url:
        print(f"database files after the run: {size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
