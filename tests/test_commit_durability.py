"""Which commits wait for the disk: every one but the writes made with durable=False,
and a batch that holds any durable write (an accept behind a 250) is durable whole.

Observed inside each transaction, on SQLite (`PRAGMA synchronous`, set before
BEGIN and used by its COMMIT) and on PostgreSQL (`synchronous_commit`).
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import Connection

from gateway.store import database
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


def test_a_lingering_write_shares_the_next_accepts_commit(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery's outcome (`lingers`) alone waits a moment for company: the accept
    that comes meanwhile commits with it, and that commit waits for the disk."""
    monkeypatch.setattr(database, "_LINGER", 2.0)  # however slow this machine

    async def pair() -> tuple[str, str, int]:
        batches = db.batches
        outcome = asyncio.ensure_future(db.write(_commit_mode, durable=False, lingers=True))
        await asyncio.sleep(0)  # queued first, alone
        accept = await db.write(_commit_mode)
        return await outcome, accept, db.batches - batches

    assert asyncio.run(pair()) == (WAITS, WAITS, 1)


def test_a_lingering_write_alone_still_commits_without_waiting_for_the_disk(
    db: Database,
) -> None:
    async def alone() -> tuple[str, float]:
        started = asyncio.get_running_loop().time()
        mode = await db.write(_commit_mode, durable=False, lingers=True)
        return mode, asyncio.get_running_loop().time() - started

    mode, took = asyncio.run(alone())
    assert mode == NO_WAIT
    assert took < 1.0  # a few milliseconds of waiting, bounded
