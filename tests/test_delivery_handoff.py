"""New mail goes straight to a free delivery worker of the process that accepted it:
its jobs are stored leased to that worker in the accept's transaction, so no claim
(a transaction and a wake-up) is needed. Without a free worker it waits to be
claimed, as before. A process holding every session hands new mail to an idle
sibling the same way: its jobs are stored leased to the sibling, and the message
is named on the sibling's pipe, so the sibling loads it with a read.

Real parts: the server's intake and delivery service wired by `gateway.app.build`,
a real SQLite store, delivery to a real SMTP sink on loopback; for siblings, two
servers built on one data directory (one SQLite file, each with its own writer,
as two processes of a node hold it), sharing one `Siblings` as forked processes do.
Dispatchers poll only every 60 s, so mail that arrives within seconds was handed
over (or claimed on a wake-up), not found by a poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from harness import Sink, free_port, settings_for, via_sink
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection

from gateway import app, datadir
from gateway.config import Settings
from gateway.intake import Submission
from gateway.siblings import Siblings, _parse
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
    """The worker is handed its lease once the accept has committed (on the event
    loop's thread)."""

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
        first, second = delivery.lease(100), delivery.lease(100)  # both workers spoken for
        assert first is not None and second is not None and delivery.lease(100) is None
        reply = await parts.intake.accept(_submission(1))
        assert reply.code == 250, reply
        assert _job_states(parts) == {queue.QUEUED: 1}  # not leased: nobody could take it
        await asyncio.sleep(0.3)
        assert not sink.messages  # the dispatcher had no worker for it either
        delivery.take(first, None)  # a promised worker is free again: the dispatcher claims
        await _until(lambda: len(sink.messages) == 1)
        delivery.take(second, None)
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


# --- to an idle sibling ---------------------------------------------------------


def _pair(processes: int = 2) -> list[Siblings]:
    """One `Siblings` as each forked process sees it."""
    made = Siblings(processes)
    views = []
    for index in range(processes):
        view = copy.copy(made)
        view.become(index)
        views.append(view)
    return views


def test_an_owner_is_read_as_published_and_cleared_by_a_replacement() -> None:
    first, second = _pair()
    assert first.owner_of(1) is None  # nothing published yet
    second.publish_owner("node-a:4242:1765000000")
    assert first.owner_of(1) == "node-a:4242:1765000000"
    second.publish_owner("node-a:4242:1765000000-longer-than-before")
    assert first.owner_of(1) == "node-a:4242:1765000000-longer-than-before"
    second.publish_owner("short")
    assert first.owner_of(1) == "short"  # not the longer one's tail
    copy.copy(second).become(1)  # a replacement in the same slot
    assert first.owner_of(1) is None
    with pytest.raises(ValueError, match="longer than"):
        second.publish_owner("x" * 300)


def test_a_hand_over_goes_to_the_owner_named_and_only_while_it_can_be_read() -> None:
    first, second = _pair()
    assert not first.hand_over("nobody", "0123456789ABCDEF01234")  # no such sibling
    second.publish_owner("b")
    assert first.hand_over("b", "0123456789ABCDEF01234")
    read_end = second._pipes[1][0]
    assert _parse(bytearray(os.read(read_end, 4096))) == (False, ["0123456789ABCDEF01234"], 23)
    with contextlib.suppress(BlockingIOError):  # fill the pipe: the sibling is not reading
        while True:
            os.write(second._pipes[1][1], b"\0" * 4096)
    assert not first.hand_over("b", "0123456789ABCDEF01234")
    first.wake(1)  # a wake-up to a full pipe is dropped quietly: it holds enough


@given(
    st.lists(
        st.one_of(st.none(), st.text("0123456789ABCDEF", min_size=1, max_size=40)), max_size=20
    ),
    st.lists(st.integers(1, 60), max_size=30),
)
def test_the_pipe_is_read_whole_however_reads_cut_it(
    records: list[str | None], cuts: list[int]
) -> None:
    data = b"".join(
        b"\0" if queue_id is None else bytes((1, len(queue_id))) + queue_id.encode()
        for queue_id in records
    )
    unread = bytearray()
    claimed = False
    seen: list[str] = []
    at = 0
    for size in [*cuts, len(data)]:  # the reads, then the rest at once
        unread.extend(data[at : at + size])
        at = min(len(data), at + size)
        claim, queue_ids, done = _parse(unread)
        del unread[:done]
        claimed |= claim
        seen += queue_ids
    assert not unread
    assert claimed == (None in records)
    assert seen == [queue_id for queue_id in records if queue_id is not None]


def test_the_tail_of_a_name_a_replaced_process_left_is_skipped() -> None:
    # The process before read up to "...567"; its replacement reads the rest.
    data = bytearray(b"89ABCDE" + bytes((1, 21)) + b"0123456789ABCDEF01234" + b"\0")
    assert _parse(data) == (True, ["0123456789ABCDEF01234"], len(data))


def _jobs(parts: app.Parts) -> list[tuple[str, str | None]]:
    with parts.db.reading() as conn:
        rows = conn.exec_driver_sql("SELECT state, lease_owner FROM jobs ORDER BY id").all()
    return [(state, owner) for state, owner in rows]


Test = Callable[[app.Parts, app.Parts, Sink], Awaitable[None]]


def _serve_two(tmp_path: Path, test: Test, start_second: bool = True) -> None:
    """Two servers on one store: the first holds a session, the second none."""
    with Sink() as sink:
        settings = _settings(tmp_path, sink)
        busy, idle = _pair()
        first = app.build(settings, siblings=busy)
        second = app.build(settings, siblings=idle)

        async def go() -> None:
            first.db.start()
            second.db.start()
            first.delivery.start()
            if start_second:
                second.delivery.start()
            busy.session_opened()
            try:
                await asyncio.sleep(0.2)  # the dispatchers' first claims find nothing
                await test(first, second, sink)
            finally:
                busy.session_closed()
                await first.delivery.stop(grace=5)
                if start_second:
                    await second.delivery.stop(grace=5)
                first.db.stop()
                second.db.stop()

        try:
            asyncio.run(go())
        finally:
            first.close()
            second.close()


def test_the_idle_sibling_delivers_new_mail_without_a_claim(tmp_path: Path) -> None:
    async def test(first: app.Parts, second: app.Parts, sink: Sink) -> None:
        first_batches, second_batches = first.db.batches, second.db.batches
        for n in range(3):  # one after the other, as one session sends
            lease = first.delivery.lease(100)
            assert lease is not None and lease.owner == second.delivery.owner
            first.delivery.take(lease, None)  # (nothing stored under it)
            reply = await first.intake.accept(_submission(n))
            assert reply.code == 250, reply
            await _until(lambda n=n: len(sink.messages) == n + 1)  # type: ignore[misc]
        await _until(lambda: [state for state, _ in _jobs(first)] == [queue.DELIVERED] * 3)
        # The first server only accepted (one commit each); the second only
        # recorded outcomes: a claim would add a commit per message.
        counts = (first.db.batches - first_batches, second.db.batches - second_batches)
        assert counts[0] <= 3 and counts[1] <= 3, counts
        assert second.delivery.owner != first.delivery.owner

    _serve_two(tmp_path, test)


def test_a_sibling_with_every_worker_busy_is_left_to_claim(tmp_path: Path) -> None:
    async def test(first: app.Parts, second: app.Parts, sink: Sink) -> None:
        idle = second.delivery.siblings
        assert idle is not None
        idle.set_in_hand(2)  # as many deliveries as its workers
        assert first.delivery.lease(100) is None
        reply = await first.intake.accept(_submission(1))
        assert reply.code == 250, reply
        # Queued, not leased; the wake-up has the sibling claim it (its workers
        # are in truth free).
        await _until(lambda: len(sink.messages) == 1)
        await _until(lambda: [state for state, _ in _jobs(first)] == [queue.DELIVERED])

    _serve_two(tmp_path, test)


def test_mail_a_sibling_cannot_be_told_of_goes_back_to_the_queue(tmp_path: Path) -> None:
    async def test(first: app.Parts, second: app.Parts, sink: Sink) -> None:
        idle = second.delivery.siblings
        assert idle is not None
        idle.publish_owner("deaf")  # not started: it reads no pipe
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(idle._pipes[1][1], b"\0" * 4096)
        reply = await first.intake.accept(_submission(1))
        assert reply.code == 250, reply
        # Stored leased to "deaf", then handed back: queued, leased to nobody,
        # for whichever process claims first.
        await _until(lambda: _jobs(first) == [(queue.QUEUED, None)])
        assert not sink.messages

    _serve_two(tmp_path, test, start_second=False)


def _then_database(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'then.db'}")
    with db.transaction() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER NOT NULL)")
    return db


def test_then_follows_the_commit_even_if_its_caller_is_cancelled(tmp_path: Path) -> None:
    db = _then_database(tmp_path)
    seen: list[int | None] = []

    def insert(conn: Connection) -> int:
        time.sleep(0.2)  # on the writer thread, the caller gives up meanwhile
        conn.exec_driver_sql("INSERT INTO t (n) VALUES (7)")
        return 7

    def fail(conn: Connection) -> int:
        conn.exec_driver_sql("INSERT INTO t (n) VALUES (NULL)")  # NOT NULL: fails
        return 8

    async def go() -> None:
        db.start()
        try:
            caller = asyncio.create_task(db.write(insert, then=seen.append))
            await asyncio.sleep(0)  # it has asked for the write, not yet committed
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


def test_mail_handed_to_a_sibling_that_stops_at_once_goes_back_to_the_queue(
    tmp_path: Path,
) -> None:
    async def test(first: app.Parts, second: app.Parts, sink: Sink) -> None:
        second.delivery.start()
        await asyncio.sleep(0.2)  # its first claim finds nothing
        reply = await first.intake.accept(_submission(1))
        assert reply.code == 250, reply
        await asyncio.sleep(0)  # the name is read; the load waits 10 ms
        await second.delivery.stop(grace=5)
        # Neither lost nor left leased to a process that is gone: queued for a claim.
        assert _jobs(first) == [(queue.QUEUED, None)]
        assert not second.delivery._side_tasks

    _serve_two(tmp_path, test, start_second=False)
