"""Which commits wait for the disk: every one but the writes made with durable=False,
and a batch that holds any durable write (an accept behind a 250) is durable whole.

On PostgreSQL it is observed inside each transaction (`synchronous_commit`). On
SQLite the writer's COMMIT never waits; a durable batch is made durable by a flush
of the write-ahead log after the write lock is let go and before anyone is
answered, so it is observed there: a flush of the WAL (`fdatasync`, watched
around the real call) between queueing a write and its answer.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from gateway.store import database
from gateway.store.audit_key import AuditKey
from gateway.store.database import Database

WAITS, NO_WAIT = "waits for the disk", "does not wait"


def _commit_mode(conn: Connection) -> str:
    if conn.dialect.name == "sqlite":
        level = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        return {2: WAITS, 1: NO_WAIT}[int(level or 0)]
    setting = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
    return {"on": WAITS, "off": NO_WAIT}[str(setting)]


class WalFlushes:
    """Counts the flushes of SQLite write-ahead logs, around the real `os.fdatasync`;
    `hook` runs before each (in the writer thread)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.hook: Callable[[], None] = lambda: None
        real = os.fdatasync

        def watched(fd: int) -> None:
            if os.readlink(f"/proc/self/fd/{fd}").endswith("-wal"):
                self.hook()
                self.count += 1
            real(fd)

        monkeypatch.setattr(os, "fdatasync", watched)


@pytest.fixture
def flushes(monkeypatch: pytest.MonkeyPatch) -> WalFlushes:
    return WalFlushes(monkeypatch)


async def _write(db: Database, flushes: WalFlushes, **options: Any) -> str:
    """Whether this write's commit waited for the disk before it was answered."""
    before = flushes.count
    mode: str = await db.write(_commit_mode, **options)
    if db.dialect != "sqlite":
        return mode
    assert mode == NO_WAIT  # the COMMIT itself: the flush comes after it
    return WAITS if flushes.count > before else NO_WAIT


async def _one_batch(db: Database, flushes: WalFlushes, durable: list[bool]) -> list[str]:
    """Queue writes while the writer is held, so they commit together; what each saw."""
    queued = threading.Event()

    def hold(_conn: Connection) -> None:
        queued.wait(10)

    held = asyncio.ensure_future(db.write(hold, durable=False))
    await asyncio.sleep(0.05)  # the writer is in `hold`'s transaction
    writes = [asyncio.ensure_future(_write(db, flushes, durable=d)) for d in durable]
    await asyncio.sleep(0.05)  # every write is queued behind it
    queued.set()
    await held
    return await asyncio.gather(*writes)


def test_an_accept_batched_with_post_acceptance_writes_still_waits_for_the_disk(
    db: Database, flushes: WalFlushes
) -> None:
    assert asyncio.run(_one_batch(db, flushes, [False, True, False])) == [WAITS] * 3


def test_post_acceptance_writes_alone_do_not_wait_and_the_next_durable_one_does(
    db: Database, flushes: WalFlushes
) -> None:
    async def both() -> tuple[list[str], str]:
        relaxed = await _one_batch(db, flushes, [False, False])
        return relaxed, await _write(db, flushes)

    relaxed, after = asyncio.run(both())
    assert relaxed == [NO_WAIT, NO_WAIT]
    assert after == WAITS
    with db.transaction() as conn:  # the CLI's transactions
        assert _commit_mode(conn) == WAITS


def test_a_lingering_write_shares_the_next_accepts_commit(
    db: Database, flushes: WalFlushes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery's outcome (`lingers`) alone waits a moment for company: the accept
    that comes meanwhile commits with it, and that commit waits for the disk."""
    monkeypatch.setattr(database, "_LINGER", 2.0)  # however slow this machine

    async def pair() -> tuple[str, str, int]:
        batches = db.batches
        outcome = asyncio.ensure_future(_write(db, flushes, durable=False, lingers=True))
        await asyncio.sleep(0)  # queued first, alone
        accept = await _write(db, flushes)
        return await outcome, accept, db.batches - batches

    assert asyncio.run(pair()) == (WAITS, WAITS, 1)


def test_a_lingering_write_alone_still_commits_without_waiting_for_the_disk(
    db: Database, flushes: WalFlushes
) -> None:
    async def alone() -> tuple[str, float]:
        started = asyncio.get_running_loop().time()
        mode = await _write(db, flushes, durable=False, lingers=True)
        return mode, asyncio.get_running_loop().time() - started

    mode, took = asyncio.run(alone())
    assert mode == NO_WAIT
    assert took < 1.0  # a few milliseconds of waiting, bounded


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    """Two stores on one SQLite file, as two processes of a node hold it."""
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    key = AuditKey(os.urandom(32))
    first, second = Database(url, audit_key=key), Database(url, audit_key=key)
    first.migrate()
    for db in (first, second):
        db.start()
    yield first, second
    for db in (first, second):
        db.close()


def _note(value: str) -> Callable[[Connection], None]:
    def write(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE IF NOT EXISTS notes (value TEXT)"))
        conn.execute(text("INSERT INTO notes VALUES (:v)"), {"v": value})

    return write


def test_an_accept_is_answered_only_after_the_flush_and_others_commit_meanwhile(
    sqlite_pair: tuple[Database, Database], flushes: WalFlushes
) -> None:
    """The flush waits outside the write lock: while one process's accept waits for
    the disk, another commits; the accept's caller hears nothing until it is flushed."""
    first, second = sqlite_pair
    flushing, release = threading.Event(), threading.Event()

    def slow_disk() -> None:
        if not flushing.is_set():
            flushing.set()
            release.wait(10)

    flushes.hook = slow_disk

    async def scenario() -> tuple[bool, list[str]]:
        accept = asyncio.ensure_future(first.write(_note("accepted")))
        assert await asyncio.to_thread(flushing.wait, 10)
        await second.write(_note("meanwhile"), durable=False)  # the lock is free
        answered_early = accept.done()
        release.set()
        await accept
        notes = text("SELECT value FROM notes")
        rows = await first.read(lambda c: list(c.execute(notes).scalars()))
        return answered_early, rows

    answered_early, rows = asyncio.run(scenario())
    assert not answered_early
    assert sorted(rows) == ["accepted", "meanwhile"]


def test_a_failed_flush_fails_the_durable_writes_of_its_batch(
    sqlite_pair: tuple[Database, Database],
    flushes: WalFlushes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An accept whose flush failed is not answered as stored (intake says 451);
    a write that did not wait for the disk keeps its result. The log names the
    error's kind, nothing the batch wrote."""
    db, _ = sqlite_pair

    def broken_disk() -> None:
        raise OSError(errno.EIO, "I/O error")

    async def scenario() -> list[Any]:
        await db.write(_note("before"))
        flushes.hook = broken_disk
        queued = threading.Event()
        held = asyncio.ensure_future(db.write(lambda _c: queued.wait(10), durable=False))
        await asyncio.sleep(0.05)
        batch = [
            asyncio.ensure_future(db.write(_note("outcome"), durable=False)),
            asyncio.ensure_future(db.write(_note("accept"))),
        ]
        await asyncio.sleep(0.05)
        queued.set()
        await held
        return await asyncio.gather(*batch, return_exceptions=True)

    with caplog.at_level(logging.ERROR, logger="gateway.store"):
        outcome, accept = asyncio.run(scenario())
    assert outcome is None
    assert isinstance(accept, OSError) and accept.errno == errno.EIO
    failed = [r for r in caplog.records if r.getMessage() == "database flush failed"]
    assert len(failed) == 1
    assert failed[0].__dict__["fields"] == {"error": "OSError"}
    assert "accept" not in caplog.text and "outcome" not in caplog.text


def test_writes_queued_while_another_process_holds_the_database_share_one_commit(
    sqlite_pair: tuple[Database, Database],
) -> None:
    """The writer takes what queued while it waited for the write lock into its batch."""
    first, second = sqlite_pair
    holding, release = threading.Event(), threading.Event()

    def hold(_conn: Connection) -> None:
        holding.set()
        release.wait(10)

    async def scenario() -> int:
        held = asyncio.ensure_future(second.write(hold, durable=False))
        assert await asyncio.to_thread(holding.wait, 10)
        batches = first.batches
        waiting = [asyncio.ensure_future(first.write(_note("first")))]
        await asyncio.sleep(0.05)  # the writer took it and waits for the lock
        waiting += [asyncio.ensure_future(first.write(_note(f"next {n}"))) for n in range(3)]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(held, *waiting)
        return first.batches - batches

    assert asyncio.run(scenario()) == 1


def _thread_of(value: str) -> Callable[[Connection], int]:
    """A write of a note that says which thread ran it."""

    def write(conn: Connection) -> int:
        _note(value)(conn)
        return threading.get_ident()

    return write


def test_a_write_made_alone_commits_on_the_callers_thread_and_is_flushed_before_its_answer(
    db: Database, flushes: WalFlushes
) -> None:
    """One client's accept spares the two hand-overs to the writer thread on SQLite,
    the disk still flushed before the answer; PostgreSQL's go to the writer as before."""

    async def scenario() -> tuple[int, int, str]:
        ran_on = await db.write(_thread_of("alone"), alone=True)
        mode = await _write(db, flushes, alone=True)
        return ran_on, threading.get_ident(), mode

    ran_on, loop_thread, mode = asyncio.run(scenario())
    assert (ran_on == loop_thread) == (db.dialect == "sqlite")
    assert mode == WAITS
    with db.reading() as conn:
        assert list(conn.execute(text("SELECT value FROM notes")).scalars()) == ["alone"]


def test_a_failed_flush_fails_a_write_made_alone(
    sqlite_pair: tuple[Database, Database], flushes: WalFlushes
) -> None:
    """Fail closed on the event loop's thread too: an accept whose flush failed is not
    answered as stored (intake says 451)."""
    db, _ = sqlite_pair
    flushed_on: list[int] = []

    def broken_disk() -> None:
        flushed_on.append(threading.get_ident())
        raise OSError(errno.EIO, "I/O error")

    async def scenario() -> tuple[int, BaseException | int]:
        flushes.hook = broken_disk
        try:
            result: BaseException | int = await db.write(_thread_of("accept"), alone=True)
        except OSError as exc:
            result = exc
        return threading.get_ident(), result

    loop_thread, result = asyncio.run(scenario())
    assert isinstance(result, OSError) and result.errno == errno.EIO
    assert flushed_on == [loop_thread]  # the flush of a commit made alone, on its thread


def test_a_write_made_alone_is_queued_while_the_database_is_busy(
    sqlite_pair: tuple[Database, Database], flushes: WalFlushes
) -> None:
    """Never a wait on the event loop: while another process holds the database, or this
    process's writer has work, a write made alone goes to the writer thread, and
    still commits and is flushed before its answer."""
    first, second = sqlite_pair
    holding, release = threading.Event(), threading.Event()

    def hold(_conn: Connection) -> None:
        holding.set()
        release.wait(10)

    async def behind(holder: Database) -> tuple[int, bool, str]:
        holding.clear()
        release.clear()
        held = asyncio.ensure_future(holder.write(hold, durable=False))
        assert await asyncio.to_thread(holding.wait, 10)
        before = flushes.count
        write = asyncio.ensure_future(first.write(_thread_of("behind"), alone=True))
        await asyncio.sleep(0.05)
        waited = not write.done()  # the loop went on meanwhile: this line ran
        release.set()
        await held
        ran_on = await write
        return ran_on, waited, WAITS if flushes.count > before else NO_WAIT

    async def scenario() -> tuple[int, list[tuple[int, bool, str]]]:
        return threading.get_ident(), [await behind(second), await behind(first)]

    loop_thread, results = asyncio.run(scenario())
    for ran_on, waited, mode in results:  # another process holds it; this one's writer
        assert ran_on != loop_thread
        assert waited
        assert mode == WAITS
    with first.reading() as conn:
        assert list(conn.execute(text("SELECT value FROM notes")).scalars()) == ["behind"] * 2


def test_shredding_in_a_write_made_alone_is_followed_by_a_checkpoint(
    sqlite_pair: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer thread, idle meanwhile, still truncates the WAL after content
    destroyed by a commit made on the event loop's thread."""
    db, _ = sqlite_pair
    checkpoints = threading.Event()
    real = db.checkpoint

    def watched(wait_ms: int = 10_000) -> bool:
        done = real(wait_ms)
        checkpoints.set()
        return done

    monkeypatch.setattr(db, "checkpoint", watched)

    def shred(conn: Connection) -> int:
        database.shredded(conn)
        return threading.get_ident()

    async def scenario() -> bool:
        ran_on = await db.write(shred, alone=True)
        assert ran_on == threading.get_ident()
        return await asyncio.to_thread(checkpoints.wait, 10)

    assert asyncio.run(scenario())
