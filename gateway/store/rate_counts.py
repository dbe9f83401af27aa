"""Messages and recipients counted per sender in fixed UTC windows, for sending limits.

A window is a UTC minute, hour or day (`WINDOWS`); its count is the sum of
one row per writer, the server process that counted (`writer_id`). A process
only ever changes its own rows, so processes and nodes on one database never
wait for each other's row locks. Counting runs in the accept's own
transaction, which the writer commits for a batch of messages: a sender's
windows are read once per transaction, and what its messages add is written
in one upsert just before the COMMIT (gateway.store.database.before_commit),
so a batch costs a statement per sender and one more, not two per message.
The statements are compiled once per dialect (gateway.store.prepared).
"""

from __future__ import annotations

import functools
import os
import secrets
from dataclasses import dataclass, field

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select

from gateway.store.database import before_commit, transaction_cache
from gateway.store.prepared import Prepared
from gateway.store.schema import rate_breaches, rate_counts
from gateway.store.upsert import dialect_insert

_BATCH = "rate_counts"
MINUTE, HOUR, DAY = 60, 3600, 86400
WINDOWS = (MINUTE, HOUR, DAY)
# PostgreSQL: one lock id for "removing old counts" (held until COMMIT).
_PRUNE_LOCK_ID = 0x706869676174_04  # "phigat" + 4 (1-3: the audit chain, daily mail, holds)


@dataclass(frozen=True)
class Count:
    messages: int = 0
    recipients: int = 0

    def plus(self, other: Count) -> Count:
        return Count(self.messages + other.messages, self.recipients + other.recipients)


def window_start(now: float, seconds: int) -> int:
    """The start of the window of `seconds` that holds `now` (UTC-aligned)."""
    return int(now // seconds) * seconds


def _starts(now: float) -> dict[str, int]:
    return {f"w{seconds}": window_start(now, seconds) for seconds in WINDOWS}


_writer: tuple[int, str] | None = None


def writer_id() -> str:
    """This process's name in `rate_counts.writer`: new in every process, forked ones too."""
    global _writer
    if _writer is None or _writer[0] != os.getpid():
        _writer = (os.getpid(), f"{os.getpid()}-{secrets.token_hex(8)}")
    return _writer[1]


_SUMS = Prepared(
    select(
        rate_counts.c.window_seconds,
        func.sum(rate_counts.c.messages),
        func.sum(rate_counts.c.recipients),
    )
    .where(
        rate_counts.c.key == bindparam("key"),
        or_(
            *(
                and_(
                    rate_counts.c.window_seconds == seconds,
                    rate_counts.c.window_start == bindparam(f"w{seconds}"),
                )
                for seconds in WINDOWS
            )
        ),
    )
    .group_by(rate_counts.c.window_seconds)
)


def read(conn: Connection, key: str, now: float) -> dict[int, Count]:
    """The counts of the windows holding `now`, by window length, every writer's summed."""
    rows = _SUMS.run(conn, {"key": key, **_starts(now)}).fetchall()
    found = {int(seconds): Count(int(sent), int(recipients)) for seconds, sent, recipients in rows}
    return {seconds: found.get(seconds, Count()) for seconds in WINDOWS}


@dataclass
class Counting:
    """One write transaction's counting (`counting`): each sender's windows read once,
    and what its messages add, written in one upsert just before the COMMIT."""

    conn: Connection
    stored: dict[tuple[str, tuple[int, ...]], dict[int, Count]] = field(default_factory=dict)
    added: dict[tuple[str, int, int], Count] = field(default_factory=dict)

    def current(self, key: str, now: float) -> dict[int, Count]:
        """`read`, with what this transaction counted since."""
        starts = tuple(window_start(now, seconds) for seconds in WINDOWS)
        stored = self.stored.get((key, starts))
        if stored is None:
            stored = self.stored[(key, starts)] = read(self.conn, key, now)
        counts = {}
        for seconds, start in zip(WINDOWS, starts, strict=True):
            added = self.added.get((key, seconds, start))
            counts[seconds] = stored[seconds] if added is None else stored[seconds].plus(added)
        return counts

    def add(self, key: str, recipients: int, now: float) -> None:
        """Count one message to `recipients` recipients in each window holding `now`."""
        one = Count(1, recipients)
        for seconds in WINDOWS:
            slot = (key, seconds, window_start(now, seconds))
            found = self.added.get(slot)
            self.added[slot] = one if found is None else found.plus(one)

    def write(self, conn: Connection) -> None:
        if not self.added:
            return
        writer = writer_id()
        _add(conn.dialect.name).run_many(
            conn,
            [
                {
                    "key": key,
                    "window_seconds": seconds,
                    "window_start": start,
                    "writer": writer,
                    "messages": count.messages,
                    "recipients": count.recipients,
                }
                for (key, seconds, start), count in sorted(self.added.items())
            ],
        )


def counting(conn: Connection) -> Counting:
    """This write transaction's counting (of `Database.write` or `Database.transaction`,
    which write what it added before their COMMIT)."""
    cache = transaction_cache(conn)
    found: Counting | None = cache.get(_BATCH)
    if found is None:
        found = cache[_BATCH] = Counting(conn)
        before_commit(conn, _BATCH, found.write)
    return found


@functools.cache
def _add(dialect: str) -> Prepared:
    insert = dialect_insert(dialect, rate_counts)
    upsert = insert.on_conflict_do_update(
        index_elements=["key", "window_seconds", "window_start", "writer"],
        set_={
            "messages": rate_counts.c.messages + insert.excluded.messages,
            "recipients": rate_counts.c.recipients + insert.excluded.recipients,
        },
    )
    return Prepared(
        upsert, ["key", "window_seconds", "window_start", "writer", "messages", "recipients"]
    )


def prune(conn: Connection, now: float) -> None:
    """Remove this process's rows of windows that have ended, and every process's rows
    (those of processes no longer running) and breaches of windows that ended more than
    a day ago: the latter by one process at a time (on PostgreSQL an advisory lock,
    tried, not waited for), so that no two removals lock the same rows."""
    long_ago = window_start(now, DAY) - DAY
    ended = or_(
        *(
            and_(
                rate_counts.c.window_seconds == seconds,
                rate_counts.c.window_start < window_start(now, seconds),
            )
            for seconds in WINDOWS
        )
    )
    conn.execute(
        delete(rate_counts).where(
            rate_counts.c.writer == writer_id(), rate_counts.c.window_start >= long_ago, ended
        )
    )
    try_lock = select(func.pg_try_advisory_xact_lock(_PRUNE_LOCK_ID))
    if conn.dialect.name == "postgresql" and not conn.execute(try_lock).scalar_one():
        return  # another process is removing them
    conn.execute(delete(rate_counts).where(rate_counts.c.window_start < long_ago))
    conn.execute(delete(rate_breaches).where(rate_breaches.c.window_start < long_ago))


def first_breach(conn: Connection, key: str, limit: str, start: int, now: float) -> bool:
    """Note that `key` reached `limit` in the window from `start`; True the first time."""
    insert = dialect_insert(conn.dialect.name, rate_breaches).on_conflict_do_nothing()
    row = {"key": key, "limit_name": limit, "window_start": start, "at": now}
    return bool(conn.execute(insert, row).rowcount)
