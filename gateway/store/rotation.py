"""Master key rotation and retirement, safe while phigate serves.

Rotation makes a new master key current, tells the running server (SIGHUP)
and re-wraps data keys in small transactions until no stored row uses an
older key. It keeps re-wrapping until every server process has reported the
new key: rows a process sealed before it picked the key up are caught by
the next pass. A key is retired (its file deleted) only when no row and no
running process uses it.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, Connection, Table, bindparam, func, select, update

from gateway.runstate import ServerNotRunning, signal_server
from gateway.store.database import Database
from gateway.store.keyholders import KeyHolder, running_holders
from gateway.store.keyring import Keyring
from gateway.store.schema import messages, portal_messages, sandbox_mail, webhook_subscriptions

# Every table with wrapped data keys, and its primary key.
_SEALED: tuple[tuple[Table, Column[str] | Column[int]], ...] = (
    (messages, messages.c.queue_id),
    (sandbox_mail, sandbox_mail.c.id),
    (portal_messages, portal_messages.c.id),  # the outer wrap; the link's stays
    (webhook_subscriptions, webhook_subscriptions.c.id),  # the signing secrets
)
# Rows re-wrapped per transaction: a big queue never holds the write lock long.
BATCH = 200
_POLL = 0.1


class RotationError(Exception):
    """A rotation or retirement that cannot be done now (the message says why and what to do)."""


@dataclass(frozen=True)
class Rotation:
    key_id: str  # the current master key
    rewrapped: int
    processes: list[int]  # server processes that seal with key_id
    server_pid: int | None  # the process signalled; None if no server runs


def rows_per_key(conn: Connection) -> Counter[str]:
    """How many stored data keys each master key wraps."""
    counts: Counter[str] = Counter()
    for table, _ident in _SEALED:
        query = (
            select(table.c.key_id, func.count())
            .where(table.c.wrapped_key.is_not(None))
            .group_by(table.c.key_id)
        )
        for key_id, count in conn.execute(query):
            counts[key_id] += count
    return counts


def _rewrap_batch(
    db: Database, keyring: Keyring, table: Table, ident: Column[str] | Column[int]
) -> int:
    current = keyring.current_key_id
    with db.transaction(behind_writers=True) as conn:
        rows = conn.execute(
            select(ident, table.c.key_id, table.c.wrapped_key)
            .where(table.c.wrapped_key.is_not(None), table.c.key_id != current)
            .limit(BATCH)
        ).all()
        if not rows:
            return 0
        changes = []
        for row_id, key_id, wrapped in rows:
            new_id, rewrapped = keyring.rewrap(key_id, wrapped)
            changes.append({"row": row_id, "new_id": new_id, "new_wrapped": rewrapped})
        conn.execute(
            update(table)
            .where(ident == bindparam("row"))
            .values(key_id=bindparam("new_id"), wrapped_key=bindparam("new_wrapped")),
            changes,
        )
        return len(rows)


def rewrap_all(db: Database, keyring: Keyring) -> int:
    """Re-wrap every data key not under the current master key; returns how many."""
    total = 0
    for table, ident in _SEALED:
        while count := _rewrap_batch(db, keyring, table, ident):
            total += count
    return total


def _signal(data_dir: Path) -> int | None:
    try:
        return signal_server(data_dir, signal.SIGHUP)
    except ServerNotRunning:
        return None  # nothing serves: nothing seals under the old key


def finish(db: Database, keyring: Keyring, data_dir: Path, timeout: float) -> Rotation:
    """Make the server follow the current key and re-wrap until no row uses an older one."""
    key_id = keyring.current_key_id
    asked = time.time()
    server_pid = _signal(data_dir)
    deadline = time.monotonic() + timeout
    rewrapped = 0
    while True:
        # Read before the pass: if no process lags now, everything sealed
        # under an older key is committed and this pass re-wraps it.
        lagging = [h for h in running_holders(data_dir) if h.current != key_id]
        rewrapped += rewrap_all(db, keyring)
        if not lagging:
            break
        failed = [h for h in lagging if h.error is not None and h.reported_at >= asked]
        if failed or time.monotonic() > deadline:
            raise RotationError(_lagging_message(key_id, rewrapped, lagging, timeout))
        time.sleep(_POLL)
    db.checkpoint()  # the replaced wrapped keys leave the WAL too
    processes = [h.pid for h in running_holders(data_dir) if h.current == key_id]
    return Rotation(key_id, rewrapped, processes, server_pid)


def _lagging_message(key_id: str, rewrapped: int, lagging: list[KeyHolder], timeout: float) -> str:
    lines = [
        f"master key {key_id} is current and {rewrapped} data keys were re-wrapped, "
        "but these server processes still seal new mail with an older key:"
    ]
    for holder in lagging:
        why = (
            f": {holder.error}" if holder.error else f" (no answer to SIGHUP within {timeout:g} s)"
        )
        lines.append(f"  pid {holder.pid} seals with {holder.current}{why}")
    lines.append(
        "Keep the older keys. Fix the problem shown (or restart phigate), then run "
        "`phigate keys rewrap`; `phigate keys ls` shows which keys are still in use."
    )
    return "\n".join(lines)


def rotate(db: Database, keyring: Keyring, data_dir: Path, timeout: float) -> Rotation:
    """Add a new current master key and re-wrap every stored data key under it."""
    keyring.rotate()
    return finish(db, keyring, data_dir, timeout)


@dataclass(frozen=True)
class KeyUse:
    key_id: str
    current: bool
    rows: int
    processes: list[int]  # server processes that seal new mail with it
    file: bool  # False: rows need a key whose file is gone


def key_uses(db: Database, keyring: Keyring, data_dir: Path) -> list[KeyUse]:
    with db.reading() as conn:
        rows = rows_per_key(conn)
    holders = running_holders(data_dir)
    present = set(keyring.key_ids)
    return [
        KeyUse(
            key_id,
            key_id == keyring.current_key_id,
            rows[key_id],
            [h.pid for h in holders if h.current == key_id],
            key_id in present,
        )
        for key_id in sorted(present | set(rows))
    ]


def retire(db: Database, keyring: Keyring, data_dir: Path, key_id: str) -> None:
    """Delete a master key file once nothing needs it; RotationError says what still does."""
    keyring.reload()
    if key_id not in keyring.key_ids:
        raise RotationError(
            f"no master key {key_id} in {keyring.directory} (see `phigate keys ls`)"
        )
    if key_id == keyring.current_key_id:
        raise RotationError(f"{key_id} is the current master key: run `phigate keys rotate` first")
    holders = [h.pid for h in running_holders(data_dir) if h.current == key_id]
    if holders:
        raise RotationError(
            f"{key_id} is still the current key of server process(es) "
            f"{', '.join(map(str, holders))}: run `phigate keys rewrap` (it signals them)"
        )
    # In a write transaction: no row under this key can be committed between
    # the count and the deletion.
    with db.transaction(behind_writers=True) as conn:
        rows = rows_per_key(conn)[key_id]
        if rows:
            raise RotationError(
                f"{rows} stored data keys are still wrapped under {key_id}: "
                "run `phigate keys rewrap`, then retire it"
            )
        keyring.remove(key_id)
