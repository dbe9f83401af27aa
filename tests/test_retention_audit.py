"""Audit event retention: pruning at a checkpoint keeps `audit verify` working and tamper-evident;
the server's scheduled pass runs in one process only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from archived import DAY, YEAR, archive, write_rules
from sqlalchemy import delete, func, select, update

from gateway.archive.rules_file import load_schedule
from gateway.archive.scheduled import ScheduledRetention
from gateway.archive.storage import DatabaseStorage
from gateway.audit import pruning, trail
from gateway.audit.trail import AuditEvent
from gateway.audit.verify import verify
from gateway.config import RetentionConfig
from gateway.store.audit_key import AuditKey
from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.store.schema import archived_messages, audit_checkpoints, audit_events

NOW = time.time()


def _events(db: Database, count: int, at: float) -> None:
    with db.transaction() as conn:
        trail.append(
            conn,
            [
                AuditEvent(
                    "accepted", "250", queue_id=f"Q{at:.0f}-{n}", sender="a@b.example", ts=at
                )
                for n in range(count)
            ],
        )


def _checkpoint(db: Database, at: float) -> None:
    with db.transaction() as conn:
        trail.checkpoint(conn, at)


def _trail(db: Database) -> None:
    """8 years ago, 7 years ago and now: events, each stretch closed by a checkpoint."""
    for age, count in ((8 * YEAR, 5), (7 * YEAR, 3), (0.0, 4)):
        _events(db, count, NOW - age)
        _checkpoint(db, NOW - age + 1)


def _key(db: Database) -> AuditKey:
    assert db.audit_key is not None
    return db.audit_key


def _prune(db: Database, before: float) -> pruning.Pruned | None:
    with db.reading() as conn:
        target = pruning.due(conn, _key(db), before)
    if target is None:
        return None
    with db.transaction() as conn:
        return pruning.prune(conn, target, "cli:test", NOW)


def _ids(db: Database) -> list[int]:
    with db.reading() as conn:
        return list(conn.execute(select(audit_events.c.id).order_by(audit_events.c.id)).scalars())


def _verified(db: Database) -> list[str]:
    with db.reading() as conn:
        report = verify(conn, _key(db))
    return [p.reason for p in report.ordered_problems()]


def test_pruning_up_to_a_checkpoint_keeps_verify_working(db: Database) -> None:
    _trail(db)
    assert _verified(db) == []
    done = _prune(db, NOW - 6 * YEAR)
    assert done is not None
    assert done.through_event == 8 and done.events == 8  # both old stretches
    kept = _ids(db)
    assert kept[0] == 9 and len(kept) == 5  # the 4 recent events and the pruning's own
    with db.reading() as conn:
        report = verify(conn, _key(db))
        pruned = conn.execute(
            select(audit_events).where(audit_events.c.event == pruning.PRUNED)
        ).one()
        anchors = conn.execute(select(audit_checkpoints.c.event_id)).scalars().all()
    assert report.ok, report.problems
    assert report.events == 5
    assert any("events through 8 were pruned" in note for note in report.notes)
    assert pruned.actor == "cli:test" and pruned.detail.startswith("through=8 checkpoint=")
    assert min(anchors) == 8  # the anchor stays; the checkpoints before it are gone
    # Nothing more is old enough: a second pass prunes nothing.
    assert _prune(db, NOW - 6 * YEAR) is None


def test_the_newest_event_is_never_pruned(db: Database) -> None:
    # A quiet trail: nothing since a checkpoint of its head, long ago.
    for age, count in ((9 * YEAR, 2), (8 * YEAR, 3)):
        _events(db, count, NOW - age)
        _checkpoint(db, NOW - age + 1)
    done = _prune(db, NOW - 6 * YEAR)
    assert done is not None and done.through_event == 2
    assert _ids(db) == [3, 4, 5, 6]  # the head (5) and the pruning's event after it
    assert _verified(db) == []


def test_a_kept_event_edited_after_pruning_is_found(db: Database) -> None:
    _trail(db)
    _prune(db, NOW - 6 * YEAR)
    with db.transaction() as conn:
        conn.execute(update(audit_events).where(audit_events.c.id == 10).values(sender="x@y.z"))
    problems = _verified(db)
    assert problems and "content does not match its hash" in problems[0]


def test_events_removed_beyond_the_recorded_pruning_are_found(db: Database) -> None:
    _trail(db)
    _prune(db, NOW - 6 * YEAR)
    with db.transaction() as conn:  # the first kept event
        conn.execute(delete(audit_events).where(audit_events.c.id == 9))
    assert any("link to the previous event is broken" in p for p in _verified(db))


def test_a_trail_cut_at_a_checkpoint_without_a_pruning_record_is_found(db: Database) -> None:
    _trail(db)
    # Someone without the key imitates a pruning: events and checkpoints before one removed.
    with db.transaction() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.id <= 5))
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.event_id < 5))
    problems = _verified(db)
    assert any("no audit_pruned event records a pruning" in p for p in problems)
    # And after a real pruning, cutting further than it recorded is found as well.
    _prune(db, NOW - 6 * YEAR)
    with db.transaction() as conn:
        newest = conn.execute(select(func.max(audit_checkpoints.c.event_id))).scalar_one()
        conn.execute(delete(audit_events).where(audit_events.c.id <= newest))
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.event_id < newest))
    assert any("the last pruning recorded was through event 8" in p for p in _verified(db))


def test_a_damaged_stretch_is_kept_as_evidence(db: Database) -> None:
    _trail(db)
    with db.transaction() as conn:
        conn.execute(update(audit_events).where(audit_events.c.id == 2).values(result="ok"))
    with db.reading() as conn, pytest.raises(pruning.AuditDamaged, match="audit event 2"):
        pruning.due(conn, _key(db), NOW - 6 * YEAR)
    assert len(_ids(db)) == 12


def test_scheduled_pass_destroys_prunes_and_runs_in_one_process(
    db: Database, tmp_path: Path
) -> None:
    _trail(db)
    keyring = Keyring.create(tmp_path / "archive-keys")
    with db.transaction() as conn:
        archive(conn, keyring, "OLD1", NOW - 7 * YEAR)
        archive(conn, keyring, "NEW1", NOW - DAY)
    schedule = load_schedule(write_rules(tmp_path))
    first = ScheduledRetention(db, schedule, RetentionConfig(), "node-a", DatabaseStorage())
    second = ScheduledRetention(db, schedule, RetentionConfig(), "node-b", DatabaseStorage())
    second.holder = "node-b:1"  # another process, as on another node

    outcome = asyncio.run(first.run_once(time.time()))
    assert outcome is not None and outcome.destroyed_count == 1
    assert asyncio.run(second.run_once(time.time())) is None  # the lease is held
    with db.reading() as conn:
        destroyed = conn.execute(
            select(archived_messages.c.queue_id).where(archived_messages.c.destroyed_at.is_not(None))
        ).scalars().all()  # fmt: skip
        actors = conn.execute(
            select(audit_events.c.actor).where(audit_events.c.event == "archive_destroyed")
        ).scalars().all()  # fmt: skip
    assert destroyed == ["OLD1"] and actors == ["server:node-a"]
    assert _ids(db)[0] == 9  # audit events older than 6 years pruned
    assert _verified(db) == []
    # Given up at shutdown, the lease passes to the other process at once.
    first.release()
    assert asyncio.run(second.run_once(time.time())) is not None
