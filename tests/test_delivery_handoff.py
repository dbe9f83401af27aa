"""New mail goes straight to a free delivery worker of the process that accepted it:
its jobs are stored leased to that worker in the accept's transaction, so no claim
(a transaction and a wake-up) is needed. Without a free worker it waits to be
claimed, as before.

Real parts: the server's intake and delivery service wired by `gateway.app.build`,
a real SQLite store, delivery to a real SMTP sink on loopback. The dispatcher polls
only every 60 s, so mail that arrives within seconds was handed over, not claimed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from harness import Sink, free_port, settings_for, via_sink
from sqlalchemy import Connection

from gateway import app, datadir
from gateway.config import Settings
from gateway.intake import Submission
from gateway.store import queue
from gateway.store.database import Database

POLL = 60.0  # longer than any test waits: only a wake-up or a hand-off delivers


def _settings(tmp_path: Path, sink: Sink, workers: int = 2) -> Settings:
    delivery = via_sink(sink, tls="none", workers=workers, poll_interval=POLL)
    settings = Settings.model_validate(
        settings_for(tmp_path / "data", free_port(), delivery=delivery)
    )
    datadir.prepare_data_dir(settings, generate_cert=True)
    return settings


def _submission(n: int, size: int = 0) -> Submission:
    body = b"x" * size + b"\r\n" if size else b"no phi\r\n"
    return Submission(
        listener="submission",
        principal=None,
        client_ip="127.0.0.1",
        helo="ehr.test",
        tls=True,
        authenticated=False,
        sender="a@clinic.example.org",
        recipients=("b@partner.test",),
        content=b"Subject: m%d\r\n\r\n" % n + body,
    )


def _job_states(parts: app.Parts) -> dict[str, int]:
    with parts.db.reading() as conn:
        rows = conn.exec_driver_sql("SELECT state, count(*) FROM jobs GROUP BY state").all()
    return {state: count for state, count in rows}


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _serve(tmp_path: Path, test: Callable[[app.Parts, Sink], Awaitable[None]]) -> None:
    """Run `test` against built, started parts (the store's writer and delivery)."""
    with Sink() as sink:
        parts = app.build(_settings(tmp_path, sink))

        async def go() -> None:
            parts.db.start()
            parts.delivery.start()
            try:
                await asyncio.sleep(0.2)  # the dispatcher's first claim finds nothing
                await test(parts, sink)
            finally:
                await parts.delivery.stop(grace=5)
                parts.db.stop()

        try:
            asyncio.run(go())
        finally:
            parts.close()


def test_new_mail_is_delivered_without_a_claim(tmp_path: Path) -> None:
    async def test(parts: app.Parts, sink: Sink) -> None:
        batches = parts.db.batches
        for n in range(3):  # one after the other, as one session sends
            reply = await parts.intake.accept(_submission(n))
            assert reply.code == 250, reply
            await _until(lambda n=n: len(sink.messages) == n + 1)  # type: ignore[misc]
        await _until(lambda: _job_states(parts) == {queue.DELIVERED: 3})
        # Per message: the accept (message, leased job, audit) and the outcome (which
        # may share the next accept's commit); no claim.
        assert parts.db.batches - batches <= 6

    _serve(tmp_path, test)


def test_without_a_free_worker_mail_waits_to_be_claimed(tmp_path: Path) -> None:
    async def test(parts: app.Parts, sink: Sink) -> None:
        delivery = parts.delivery
        leases = [delivery.lease(100), delivery.lease(100)]  # both workers spoken for
        assert all(leases) and delivery.lease(100) is None
        reply = await parts.intake.accept(_submission(1))
        assert reply.code == 250, reply
        assert _job_states(parts) == {queue.QUEUED: 1}  # not leased: nobody could take it
        await asyncio.sleep(0.3)
        assert not sink.messages  # the dispatcher had no worker for it either
        delivery.take(leases[0], None)  # a promised worker is free again: the dispatcher claims
        await _until(lambda: len(sink.messages) == 1)
        delivery.take(leases[1], None)
        await _until(lambda: _job_states(parts) == {queue.DELIVERED: 1})

    _serve(tmp_path, test)


def test_a_large_message_is_claimed_at_its_turn(tmp_path: Path) -> None:
    async def test(parts: app.Parts, sink: Sink) -> None:
        size = parts.delivery.large_message_size + 1
        assert parts.delivery.lease(size) is None  # its content is loaded at its turn
        reply = await parts.intake.accept(_submission(1, size))
        assert reply.code == 250, reply
        await _until(lambda: len(sink.messages) == 1)  # claimed, after intake's wake-up

    _serve(tmp_path, test)


def test_no_handoff_before_start_or_while_stopping(tmp_path: Path) -> None:
    with Sink() as sink:
        parts = app.build(_settings(tmp_path, sink))

        async def go() -> None:
            parts.db.start()
            try:
                assert parts.delivery.lease(100) is None  # delivery role off: never started
                parts.delivery.start()
                lease = parts.delivery.lease(100)
                assert lease is not None
                parts.delivery.take(lease, None)
                await parts.delivery.stop(grace=5)
                assert parts.delivery.lease(100) is None
            finally:
                parts.db.stop()

        try:
            asyncio.run(go())
        finally:
            parts.close()


def test_a_failed_store_gives_its_worker_back(tmp_path: Path) -> None:
    async def test(parts: app.Parts, sink: Sink) -> None:
        with parts.db.transaction() as conn:
            conn.exec_driver_sql("DROP TABLE audit_events")  # the next store cannot complete
        reply = await parts.intake.accept(_submission(1))
        assert reply.code == 451, reply
        leases = [parts.delivery.lease(100) for _ in range(3)]
        assert leases[0] and leases[1] and leases[2] is None  # both workers free again

    _serve(tmp_path, test)


def _then_database(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'then.db'}")
    with db.transaction() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER NOT NULL)")
    return db


def test_then_follows_the_commit_even_if_its_caller_is_cancelled(tmp_path: Path) -> None:
    db = _then_database(tmp_path)
    seen: list[int | None] = []

    def insert(conn: Connection) -> int:
        time.sleep(0.2)  # the caller gives up meanwhile
        conn.exec_driver_sql("INSERT INTO t (n) VALUES (7)")
        return 7

    def fail(conn: Connection) -> int:
        conn.exec_driver_sql("INSERT INTO t (n) VALUES (NULL)")  # NOT NULL: fails
        return 8

    async def go() -> None:
        db.start()
        try:
            caller = asyncio.create_task(db.write(insert, then=seen.append))
            await asyncio.sleep(0.05)
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            await _until(lambda: seen == [7])
            with pytest.raises(Exception, match="NOT NULL"):
                await db.write(fail, then=seen.append)
            assert seen == [7, None]  # called before the caller resumed
        finally:
            db.stop()

    try:
        asyncio.run(go())
        with db.reading() as conn:
            assert conn.exec_driver_sql("SELECT n FROM t").scalars().all() == [7]
    finally:
        db.close()
