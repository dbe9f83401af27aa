"""Which commits wait for the disk: every one but the writes made with durable=False,
and a batch that holds any durable write (an accept behind a 250) is durable whole.

On PostgreSQL it is observed inside each transaction (`synchronous_commit`). On
SQLite the COMMIT never waits; a durable batch is made durable by a flush of the
write-ahead log after the write lock is let go and before anyone is answered, so
it is observed there: a flush of the WAL (`fdatasync`, watched around the real
call) between asking for a write and its answer.

On SQLite a batch is committed on the event loop's thread, or by the writer
thread when the database is busy or the disk slow (`slow_disk`); PostgreSQL's
always go to the writer thread. The tests of batches run both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from databases import ON_POSTGRES
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
    `hook` runs before each (in the thread that flushes)."""

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


@pytest.fixture(autouse=True)
def fast_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """No flush is slow enough to send batches to the writer thread, however busy
    this machine (`slow_disk` says otherwise)."""
    monkeypatch.setattr(database, "_LOOP_FLUSH", 60.0)


def slow_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every flush counts as slow: each store's batches go to its writer thread, as
    they do on PostgreSQL."""
    monkeypatch.setattr(database, "_LOOP_FLUSH", -1.0)


# PostgreSQL commits on the writer thread only.
@pytest.fixture(params=["writer"] if ON_POSTGRES else ["loop", "writer"])
def batching(request: pytest.FixtureRequest, db: Database, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where `db` commits its batches: on the event loop's thread (SQLite, a fast
    disk) or on its writer thread (a slow disk, or PostgreSQL)."""
    if request.param == "writer":
        slow_disk(monkeypatch)
    return str(request.param)


async def _write(db: Database, flushes: WalFlushes, **options: Any) -> str:
    """Whether this write's commit waited for the disk before it was answered."""
    before = flushes.count
    mode: str = await db.write(_commit_mode, **options)
    if db.dialect != "sqlite":
        return mode
    assert mode == NO_WAIT  # the COMMIT itself: the flush comes after it
    return WAITS if flushes.count > before else NO_WAIT


async def _together(db: Database, writes: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Writes asked for together, so that they commit together; their results (or
    exceptions).

    On the event loop's thread the writes of one turn of the loop share a commit.
    On the writer thread the writer is held (in a write of its own) until all are
    queued behind it."""
    queued = threading.Event()
    held = None
    if db.dialect != "sqlite" or database._LOOP_FLUSH < 0:

        def hold(_conn: Connection) -> None:
            queued.wait(10)

        held = asyncio.ensure_future(db.write(hold, durable=False))
        await asyncio.sleep(0.05)  # the writer is in `hold`'s transaction
    started = [asyncio.ensure_future(write()) for write in writes]
    if held is not None:
        await asyncio.sleep(0.05)  # every write is queued behind it
        queued.set()
        await held
    return await asyncio.gather(*started, return_exceptions=True)


async def _one_batch(db: Database, flushes: WalFlushes, durable: list[bool]) -> list[str]:
    """Writes asked for together (`_together`): whether each waited for the disk."""
    return await _together(db, [functools.partial(_write, db, flushes, durable=d) for d in durable])


def test_an_accept_batched_with_post_acceptance_writes_still_waits_for_the_disk(
    db: Database, flushes: WalFlushes, batching: str
) -> None:
    async def together() -> tuple[list[str], int]:
        batches = db.batches
        modes = await _one_batch(db, flushes, [False, True, False])
        return modes, db.batches - batches

    modes, batches = asyncio.run(together())
    assert modes == [WAITS] * 3
    assert batches == (1 if batching == "loop" else 2)  # the writer's own `hold` too


def test_post_acceptance_writes_alone_do_not_wait_and_the_next_durable_one_does(
    db: Database, flushes: WalFlushes, batching: str
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
    db: Database, flushes: WalFlushes, batching: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery's outcome (`lingers`) alone waits a moment for company: the accept
    that comes meanwhile commits with it, and that commit waits for the disk."""
    monkeypatch.setattr(database, "_LINGER", 2.0)  # however slow this machine

    async def pair() -> tuple[str, str, int]:
        batches = db.batches
        outcome = asyncio.ensure_future(_write(db, flushes, durable=False, lingers=True))
        await asyncio.sleep(0.05)  # asked for first, alone
        accept = await _write(db, flushes)
        return await outcome, accept, db.batches - batches

    assert asyncio.run(pair()) == (WAITS, WAITS, 1)


def test_a_lingering_write_alone_still_commits_without_waiting_for_the_disk(
    db: Database, flushes: WalFlushes, batching: str
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


def _notes(db: Database) -> list[str]:
    with db.reading() as conn:
        return sorted(conn.execute(text("SELECT value FROM notes")).scalars())


@contextlib.contextmanager
def _held(store: Database) -> Iterator[None]:
    """`store` held by a transaction of another thread, as a CLI command or another
    process holds the database: its writes wait for their turn meanwhile."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction(behind_writers=True):
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        yield
    finally:
        release.set()
        holder.join(10)


def test_an_accept_is_answered_only_after_the_flush_and_others_commit_meanwhile(
    sqlite_pair: tuple[Database, Database],
    flushes: WalFlushes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The flush waits outside the write lock: while one process's accept waits for
    the disk, another commits; the accept's caller hears nothing until it is flushed.
    By the writer thread, with a slow disk."""
    first, second = sqlite_pair
    slow_disk(monkeypatch)
    flushing, release = threading.Event(), threading.Event()

    def slow_flush() -> None:
        if not flushing.is_set():
            flushing.set()
            release.wait(10)

    flushes.hook = slow_flush

    async def scenario() -> bool:
        accept = asyncio.ensure_future(first.write(_note("accepted")))
        assert await asyncio.to_thread(flushing.wait, 10)
        await second.write(_note("meanwhile"), durable=False)  # the lock is free
        answered_early = accept.done()
        release.set()
        await accept
        return answered_early

    assert not asyncio.run(scenario())
    assert _notes(first) == ["accepted", "meanwhile"]


def test_an_accept_committed_on_the_loop_is_answered_after_its_flush_and_others_commit_meanwhile(
    sqlite_pair: tuple[Database, Database], flushes: WalFlushes
) -> None:
    """The same on the event loop's thread: the flush that keeps it waiting comes
    after the write lock is let go, and only then is the accept answered."""
    first, second = sqlite_pair
    seen: list[tuple[int, bool, bool]] = []  # flushing thread, answered, other still waiting
    accept: asyncio.Future[None] | None = None

    def commit_elsewhere() -> None:
        with second.transaction(behind_writers=True) as conn:  # waits for the write lock
            _note("meanwhile")(conn)

    def another_process_commits() -> None:
        if seen or accept is None:
            return
        other = threading.Thread(target=commit_elsewhere)
        other.start()
        other.join(10)  # a flush that still held the lock would keep it waiting
        seen.append((threading.get_ident(), accept.done(), other.is_alive()))

    flushes.hook = another_process_commits

    async def scenario() -> int:
        nonlocal accept
        accept = asyncio.ensure_future(first.write(_note("accepted")))
        await accept
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert seen == [(loop_thread, False, False)]  # flushed on the event loop, unanswered
    assert _notes(first) == ["accepted", "meanwhile"]


@pytest.mark.parametrize("batching", ["loop", "writer"])
def test_a_failed_flush_fails_the_durable_writes_of_its_batch(
    sqlite_pair: tuple[Database, Database],
    flushes: WalFlushes,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    batching: str,
) -> None:
    """An accept whose flush failed is not answered as stored (intake says 451);
    a write that did not wait for the disk keeps its result. The log names the
    error's kind, nothing the batch wrote."""
    db, _ = sqlite_pair
    if batching == "writer":
        slow_disk(monkeypatch)
    flushed_on: list[int] = []

    def broken_disk() -> None:
        flushed_on.append(threading.get_ident())
        raise OSError(errno.EIO, "I/O error")

    async def scenario() -> tuple[int, list[Any]]:
        await db.write(_note("before"))
        flushes.hook = broken_disk
        batch = [
            functools.partial(db.write, _note("outcome"), durable=False),
            functools.partial(db.write, _note("accept")),
        ]
        return threading.get_ident(), await _together(db, batch)

    with caplog.at_level(logging.ERROR, logger="gateway.store"):
        loop_thread, (outcome, accept) = asyncio.run(scenario())
    assert outcome is None
    assert isinstance(accept, OSError) and accept.errno == errno.EIO
    assert len(flushed_on) == 1
    assert (flushed_on[0] == loop_thread) == (batching == "loop")
    failed = [r for r in caplog.records if r.getMessage() == "database flush failed"]
    assert len(failed) == 1
    assert failed[0].__dict__["fields"] == {"error": "OSError"}
    assert "accept" not in caplog.text and "outcome" not in caplog.text


def test_writes_made_while_another_process_holds_the_database_wait_off_the_loop_in_order(
    sqlite_pair: tuple[Database, Database],
) -> None:
    """Never a wait on the event loop: while another process holds the database, the
    first write goes to the writer thread, which waits for the write lock; those made
    after it wait on the loop until it is answered, then share one commit there."""
    first, second = sqlite_pair

    async def scenario() -> tuple[int, list[int], int]:
        with _held(second):
            batches = first.batches
            waiting = [asyncio.ensure_future(first.write(_thread_of("first")))]
            await asyncio.sleep(0.05)  # the writer took it and waits for the lock
            waiting += [
                asyncio.ensure_future(first.write(_thread_of(f"next {n}"))) for n in range(3)
            ]
            await asyncio.sleep(0.05)  # the loop went on meanwhile: this line ran
            assert not any(write.done() for write in waiting)
        ran_on = await asyncio.gather(*waiting)
        return first.batches - batches, ran_on, threading.get_ident()

    batches, ran_on, loop_thread = asyncio.run(scenario())
    assert batches == 2
    assert ran_on[0] != loop_thread
    assert ran_on[1:] == [loop_thread] * 3
    with first.reading() as conn:
        rows = conn.execute(text("SELECT value FROM notes ORDER BY rowid")).scalars().all()
    assert rows == ["first", "next 0", "next 1", "next 2"]


def _thread_of(value: str) -> Callable[[Connection], int]:
    """A write of a note that says which thread ran it."""

    def write(conn: Connection) -> int:
        _note(value)(conn)
        return threading.get_ident()

    return write


def test_a_write_commits_on_the_event_loops_thread_and_is_flushed_before_its_answer(
    db: Database, flushes: WalFlushes
) -> None:
    """On SQLite a batch spares the two hand-overs to the writer thread, the disk still
    flushed before the answer; PostgreSQL's go to the writer."""

    async def scenario() -> tuple[int, int, str]:
        ran_on = await db.write(_thread_of("here"))
        mode = await _write(db, flushes)
        return ran_on, threading.get_ident(), mode

    ran_on, loop_thread, mode = asyncio.run(scenario())
    assert (ran_on == loop_thread) == (db.dialect == "sqlite")
    assert mode == WAITS
    assert _notes(db) == ["here"]


def test_slow_flushes_send_the_batches_to_the_writer_thread_and_fast_ones_back(
    sqlite_pair: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that makes the event loop wait too long for its flushes: the batches
    commit on the writer thread while flushes take longer than `_LOOP_FLUSH` on
    average, and on the event loop again once they do not."""
    db, _ = sqlite_pair

    async def threads() -> list[int]:
        return [await db.write(_thread_of(str(n))) for n in range(3)]

    loop_thread = threading.get_ident()
    assert asyncio.run(threads()) == [loop_thread] * 3  # the flushes so far: fast enough
    monkeypatch.setattr(database, "_LOOP_FLUSH", -1.0)  # every flush is too slow
    assert loop_thread not in asyncio.run(threads())
    monkeypatch.setattr(database, "_LOOP_FLUSH", 60.0)  # the disk is fast again
    assert asyncio.run(threads()) == [loop_thread] * 3


def test_one_slow_flush_keeps_the_batches_on_the_event_loop_a_slow_disk_does_not(
    sqlite_pair: tuple[Database, Database],
    flushes: WalFlushes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a busy machine a flush now and then waits for a core: one slow flush among
    fast ones leaves the batches on the event loop; a disk whose every flush is slow
    sends them to the writer thread within a few flushes."""
    db, _ = sqlite_pair
    monkeypatch.setattr(database, "_LOOP_FLUSH", 0.05)
    delays = iter([0.2] + [0.0] * 3 + [0.2] * 20)
    flushes.hook = lambda: time.sleep(next(delays, 0.2))

    async def threads(count: int) -> list[int]:
        return [await db.write(_thread_of(str(n))) for n in range(count)]

    loop_thread = threading.get_ident()
    assert asyncio.run(threads(4)) == [loop_thread] * 4  # one slow, three fast
    on = asyncio.run(threads(8))  # every flush slow from here
    assert on[0] == loop_thread
    assert loop_thread not in on[-3:]


def test_writes_while_this_process_is_at_the_database_go_to_the_writer_thread(
    sqlite_pair: tuple[Database, Database], flushes: WalFlushes
) -> None:
    """Never a wait on the event loop: while another thread of this process (a CLI
    command's transaction, the writer's checkpoint) or another process holds the
    database, a write goes to the writer thread, and still commits and is flushed
    before its answer."""
    first, second = sqlite_pair

    async def behind(holder: Database) -> tuple[int, bool, str]:
        before = flushes.count
        with _held(holder):
            write = asyncio.ensure_future(first.write(_thread_of("behind")))
            await asyncio.sleep(0.05)
            waited = not write.done()  # the loop went on meanwhile: this line ran
        ran_on = await write
        return ran_on, waited, WAITS if flushes.count > before else NO_WAIT

    async def scenario() -> tuple[int, list[tuple[int, bool, str]]]:
        return threading.get_ident(), [await behind(second), await behind(first)]

    loop_thread, results = asyncio.run(scenario())
    for ran_on, waited, mode in results:  # another process holds it; this one's thread
        assert ran_on != loop_thread
        assert waited
        assert mode == WAITS
    assert _notes(first) == ["behind"] * 2


def test_shredding_committed_on_the_event_loop_is_followed_by_a_checkpoint(
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
        ran_on = await db.write(shred)
        assert ran_on == threading.get_ident()
        return await asyncio.to_thread(checkpoints.wait, 10)

    assert asyncio.run(scenario())


def test_a_lingering_write_left_when_the_store_stops_is_committed(
    sqlite_pair: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write still waiting on the event loop for company when the store stops (a
    server shutting down) goes to the writer, which commits it before it ends."""
    db, _ = sqlite_pair
    monkeypatch.setattr(database, "_LINGER", 60.0)

    async def scenario() -> None:
        outcome = asyncio.ensure_future(db.write(_note("outcome"), durable=False, lingers=True))
        await asyncio.sleep(0.05)
        db.stop()
        await asyncio.wait_for(outcome, 10)

    asyncio.run(scenario())
    assert _notes(db) == ["outcome"]


def test_a_write_never_commits_before_one_handed_to_the_writer_thread_before_it(
    sqlite_pair: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits keep the order writes were asked for in (a key report's empty write
    must follow every message sealed before it): a write made while an earlier one
    waits at the writer thread waits for it on the event loop, even once the
    database is free, and then commits there."""
    db, _ = sqlite_pair
    monkeypatch.setattr(database, "_LINGER", 1.0)

    async def scenario() -> tuple[bool, int, int]:
        with _held(db):
            early = asyncio.ensure_future(db.write(_note("early"), durable=False, lingers=True))
            # Its wait on the event loop ends while the database is held: it goes to the
            # writer thread, which waits a second time for company there.
            await asyncio.sleep(1.3)
        late = await db.write(_thread_of("late"))  # the database is free now
        return early.done(), late, threading.get_ident()

    early_answered, late_on, loop_thread = asyncio.run(scenario())
    assert early_answered
    assert late_on == loop_thread
    with db.reading() as conn:
        rows = conn.execute(text("SELECT value FROM notes ORDER BY rowid")).scalars().all()
    assert rows == ["early", "late"]


def test_a_write_lock_held_outside_the_turns_never_stops_the_event_loop(
    sqlite_pair: tuple[Database, Database], tmp_path: Path
) -> None:
    """A CLI command's transaction that does not queue with the server's writers can
    hold SQLite's write lock: a write then goes to the writer thread, which waits for
    the lock, while the event loop goes on."""
    db, _ = sqlite_pair

    async def scenario(holder: sqlite3.Connection) -> tuple[int, bool, int]:
        write = asyncio.ensure_future(db.write(_thread_of("after the command")))
        await asyncio.sleep(0.2)  # the loop went on meanwhile: this line ran
        waited = not write.done()
        holder.rollback()
        return await write, waited, threading.get_ident()

    holder = sqlite3.connect(tmp_path / "queue.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        ran_on, waited, loop_thread = asyncio.run(scenario(holder))
    finally:
        holder.close()
    assert waited
    assert ran_on != loop_thread
    assert _notes(db) == ["after the command"]
