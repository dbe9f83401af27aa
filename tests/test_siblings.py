"""A process holding every session hands new mail to an idle sibling: its jobs are
stored leased to the sibling in the accept's transaction and the message is named
on the sibling's pipe, so the sibling loads it with a read and claims nothing.

Real parts: two servers' intake and delivery built by `gateway.app.build` on one
data directory (one SQLite file, each with its own writer, as two processes of a
node hold it), sharing one `Siblings` as the forked processes do, and a real SMTP
sink on loopback. Dispatchers poll only every 60 s: what is delivered within
seconds was handed over or claimed on a wake-up.
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

from gateway import app, datadir
from gateway.config import Settings
from gateway.intake import Submission
from gateway.siblings import Siblings, _parse
from gateway.store import queue

POLL = 60.0


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


def _settings(tmp_path: Path, sink: Sink) -> Settings:
    delivery = via_sink(sink, tls="none", workers=2, poll_interval=POLL)
    settings = Settings.model_validate(
        settings_for(tmp_path / "data", free_port(), delivery=delivery)
    )
    datadir.prepare_data_dir(settings, generate_cert=True)
    return settings


def _submission(n: int) -> Submission:
    return Submission(
        listener="submission",
        principal=None,
        client_ip="127.0.0.1",
        helo="ehr.test",
        tls=True,
        authenticated=False,
        sender="a@clinic.example.org",
        recipients=("b@partner.test",),
        content=b"Subject: m%d\r\n\r\nno phi\r\n" % n,
    )


def _jobs(parts: app.Parts) -> list[tuple[str, str | None]]:
    with parts.db.reading() as conn:
        rows = conn.exec_driver_sql("SELECT state, lease_owner FROM jobs ORDER BY id").all()
    return [(state, owner) for state, owner in rows]


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


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
