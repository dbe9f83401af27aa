"""Which commits wait for the disk: every one but the writes made with durable=False,
and a batch that holds any durable write (an accept behind a 250) is durable whole.

Observed inside each transaction, on SQLite (`PRAGMA synchronous`, set before
BEGIN and used by its COMMIT) and on PostgreSQL (`synchronous_commit`).
"""

from __future__ import annotations

import asyncio
import threading

from sqlalchemy import Connection

from gateway.store.database import Database

WAITS, NO_WAIT = "waits for the disk", "does not wait"


def _commit_mode(conn: Connection) -> str:
    if conn.dialect.name == "sqlite":
        level = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        return {2: WAITS, 1: NO_WAIT}[int(level or 0)]
    setting = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
    return {"on": WAITS, "off": NO_WAIT}[str(setting)]


async def _one_batch(db: Database, durable: list[bool]) -> list[str]:
    """Queue writes while the writer is held, so they commit together; what each saw."""
    queued = threading.Event()

    def hold(_conn: Connection) -> None:
        queued.wait(10)

    held = asyncio.ensure_future(db.write(hold, durable=False))
    await asyncio.sleep(0.05)  # the writer is in `hold`'s transaction
    writes = [asyncio.ensure_future(db.write(_commit_mode, durable=d)) for d in durable]
    await asyncio.sleep(0.05)  # every write is queued behind it
    queued.set()
    await held
    return await asyncio.gather(*writes)


def test_an_accept_batched_with_post_acceptance_writes_still_waits_for_the_disk(
    db: Database,
) -> None:
    assert asyncio.run(_one_batch(db, [False, True, False])) == [WAITS] * 3


def test_post_acceptance_writes_alone_do_not_wait_and_the_next_durable_one_does(
    db: Database,
) -> None:
    async def both() -> tuple[list[str], str]:
        relaxed = await _one_batch(db, [False, False])
        return relaxed, await db.write(_commit_mode)

    relaxed, after = asyncio.run(both())
    assert relaxed == [NO_WAIT, NO_WAIT]
    assert after == WAITS
    with db.transaction() as conn:  # the CLI's transactions
        assert _commit_mode(conn) == WAITS
