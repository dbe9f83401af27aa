"""Fill a store's archive with many entries of realistic metadata, fast (not through SMTP).

    .venv/bin/python bench/archive_fill.py sqlite:////tmp/archive.db --count 1000000
    .venv/bin/python bench/archive_fill.py postgresql+psycopg://postgres@127.0.0.1:5432/x

For the archive's search and retention benchmarks: `fill(db_url, count, seed)`
migrates the store and bulk-inserts `count` archived messages and their
recipients. Senders come from a few hundred sending systems' domains, one to
three recipients each from a pool of 50,000 addresses in 2,000 domains,
received over the last seven years (so that retention rules have mail to
destroy), categories and the PHI flag in the proportions of a hospital's mail,
2 % portal replies. The same seed gives the same entries. The content is random
bytes standing in for ciphertext under a key id (`mk-fill`) no keyring has: the
entries are for selecting and destroying, not for opening. The archive's
indexes are dropped while it inserts and built again at the end (five times
faster than growing them): fill a store no server is using.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Table

from gateway.store.database import Database
from gateway.store.schema import archived_messages, archived_recipients

YEARS = 7
SENDING_DOMAINS = 300
RECIPIENT_DOMAINS = 2_000
RECIPIENT_ADDRESSES = 50_000
CATEGORIES = (
    ("treatment", 55),
    ("operations", 20),
    ("payment", 12),
    ("transactional", 8),
    ("marketing", 4),
    ("unknown", 1),
)
CONTENT_BYTES = 64  # stands in for the ciphertext: retention has something to delete
_CHUNK = 10_000
MESSAGE_COLUMNS = (
    "queue_id", "kind", "received_at", "message_id", "principal", "sender", "sender_domain",
    "category", "phi", "size", "sha256", "storage", "key_id", "wrapped_key", "content",
)  # fmt: skip
RECIPIENT_COLUMNS = ("queue_id", "recipient", "domain")
_CACHE_KB = 512 * 1024


def _sender_pool(rng: random.Random) -> list[tuple[str, str, str]]:
    """(principal, domain, local parts' stem) of the sending systems."""
    return [
        (f"system{i}", f"clinic{i}.example.org", rng.choice(("ehr", "billing", "lab", "noreply")))
        for i in range(SENDING_DOMAINS)
    ]


def _recipient(index: int) -> str:
    return f"person{index}@partner{index % RECIPIENT_DOMAINS}.example.net"


def _entries(count: int, seed: int, now: float) -> Iterator[tuple[tuple[Any, ...], list[str]]]:
    rng = random.Random(seed)
    senders = _sender_pool(rng)
    names, weights = zip(*CATEGORIES, strict=True)
    span = YEARS * 365 * 86400.0
    # In time order, as intake writes them: the key and time indexes only grow at the end.
    times = sorted(now - rng.random() * span for _ in range(count))
    for n, received in enumerate(times):
        principal, domain, stem = senders[int(rng.paretovariate(1.2)) % SENDING_DOMAINS]
        millis = int(received * 1000)
        queue_id = f"{millis:011X}{n:010X}"  # time-ordered and unique, as intake's are
        category = rng.choices(names, weights)[0]
        recipients = sorted(
            {
                _recipient(rng.randrange(RECIPIENT_ADDRESSES))
                for _ in range(rng.choice((1, 1, 2, 3)))
            }
        )
        row = (  # in the order of MESSAGE_COLUMNS
            queue_id,
            "portal_reply" if rng.random() < 0.02 else "message",
            received,
            f"<{queue_id.lower()}@{domain}>",
            principal,
            f"{stem}{rng.randrange(20)}@{domain}",
            domain,
            category,
            category in ("treatment", "payment") and rng.random() < 0.8,
            int(rng.lognormvariate(9.0, 1.2)) + 300,
            rng.randbytes(32).hex(),
            "database",
            "mk-fill",
            rng.randbytes(60),
            rng.randbytes(CONTENT_BYTES),
        )
        yield row, recipients


def _insert_sql(table: Table, columns: Sequence[str], marker: str) -> str:
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join([marker] * len(columns))})"
    )


def fill(db_url: str, count: int, seed: int = 7) -> float:
    """Migrate the store at db_url and insert `count` archive entries; returns seconds."""
    db = Database(db_url)
    try:
        db.migrate()
        started = time.perf_counter()
        messages: list[tuple[Any, ...]] = []
        recipients: list[tuple[str, str, str]] = []
        # Straight to the driver: building SQLAlchemy's parameters cost as much as the inserts.
        marker = "?" if db.dialect == "sqlite" else "%s"
        insert_message = _insert_sql(archived_messages, MESSAGE_COLUMNS, marker)
        insert_recipient = _insert_sql(archived_recipients, RECIPIENT_COLUMNS, marker)

        def flush() -> None:
            with db.transaction() as conn:
                conn.exec_driver_sql(insert_message, messages)
                conn.exec_driver_sql(insert_recipient, recipients)
            messages.clear()
            recipients.clear()

        # Indexes built once at the end, from sorted keys, rather than grown row by row.
        indexes = [*archived_messages.indexes, *archived_recipients.indexes]
        with db.transaction() as conn:
            for index in indexes:
                index.drop(conn, checkfirst=True)
        try:
            for row, to in _entries(count, seed, time.time()):
                messages.append(row)
                recipients.extend((row[0], r, r.rpartition("@")[2]) for r in to)
                if len(messages) >= _CHUNK:
                    flush()
            if messages:
                flush()
        finally:
            with db.transaction() as conn:
                if db.dialect == "sqlite":
                    conn.exec_driver_sql(f"PRAGMA cache_size=-{_CACHE_KB}")
                for index in indexes:
                    index.create(conn, checkfirst=True)
        return time.perf_counter() - started
    finally:
        db.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("db_url", help="The store (SQLAlchemy URL), migrated if it is new.")
    parser.add_argument("--count", type=int, default=1_000_000, help="Entries to add.")
    parser.add_argument("--seed", type=int, default=7, help="The same seed, the same entries.")
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 100_000_000:
        parser.error("--count must be 1..100000000")
    seconds = fill(args.db_url, args.count, args.seed)
    print(f"{args.count} archive entries in {seconds:.1f} s ({args.count / seconds:.0f}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
