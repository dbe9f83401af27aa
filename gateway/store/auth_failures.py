"""Failed AUTH counted in the database, so that every node on it counts the same ones.

Rows are changed under a row lock (PostgreSQL `FOR UPDATE`; SQLite's write
transaction is exclusive anyway): failures on two nodes at once add up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select, update

from gateway.store.schema import auth_failures
from gateway.store.upsert import on_conflict_insert


@dataclass(frozen=True)
class Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


def read(conn: Connection, keys: Sequence[str]) -> list[Failures]:
    """Each key's failures, in the order of `keys` (none yet: a zero count)."""
    rows = conn.execute(select(auth_failures).where(auth_failures.c.key.in_(keys)))
    found = {row.key: Failures(row.failures, row.last, row.locked_until) for row in rows}
    return [found.get(key, Failures()) for key in keys]


def change(
    conn: Connection, keys: Sequence[str], step: Callable[[Failures], Failures]
) -> list[Failures]:
    """Replace each key's failures by `step` of them, under a row lock; returns the new ones."""
    # Rows made and locked in the order of their keys: two of these at once wait, never deadlock.
    insert = on_conflict_insert(conn, auth_failures)
    conn.execute(
        insert.on_conflict_do_nothing(index_elements=["key"]),
        [{"key": key, "failures": 0, "last": 0.0, "locked_until": 0.0} for key in sorted(keys)],
    )
    locked = (
        select(auth_failures)
        .where(auth_failures.c.key.in_(keys))
        .order_by(auth_failures.c.key)
        .with_for_update()
    )
    current = {
        row.key: Failures(row.failures, row.last, row.locked_until) for row in conn.execute(locked)
    }
    changed = [step(current[key]) for key in keys]
    for key, new in zip(keys, changed, strict=True):
        conn.execute(
            update(auth_failures)
            .where(auth_failures.c.key == key)
            .values(failures=new.count, last=new.last, locked_until=new.locked_until)
        )
    return changed


def clear(conn: Connection, keys: Sequence[str], now: float) -> None:
    """Forget the failures of these keys, unless they hold a lockout still in force."""
    conn.execute(
        delete(auth_failures).where(
            auth_failures.c.key.in_(keys), auth_failures.c.locked_until <= now
        )
    )


def prune(conn: Connection, now: float, horizon: float) -> None:
    """Remove rows whose failures no longer count and that lock nothing out."""
    conn.execute(
        delete(auth_failures).where(
            auth_failures.c.last < now - horizon, auth_failures.c.locked_until <= now
        )
    )
