"""Destroying archived content its retention rule made due: crypto-shredding, in batches.

A run walks the archive oldest first, a batch per transaction. In each batch
it picks the messages due at `now` (gateway.archive.retention), leaves out
every one a standing legal hold covers (gateway.archive.holds, decided in the
same transaction, so a hold placed meanwhile is either seen or comes after),
and destroys the rest: the data key (`wrapped_key`) and the ciphertext
(`content`) become NULL, so nothing can open the message again. The
transaction is marked shredded, so on SQLite its commit is followed by a
truncating WAL checkpoint and `secure_delete` has zeroed the freed cells
(gateway.store.database). Content kept in an object store loses its key in
the same commit; the object itself is deleted right after. The row stays,
metadata only, with `destroyed_at` and the destruction record that says
what was destroyed, when, under which rule and by whom (one record per rule
in a batch, and an audit event for each).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, select, tuple_, update

from gateway.archive import holds, records
from gateway.archive.retention import Schedule, due, may_be_due_before
from gateway.archive.storage import ArchiveStorage
from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.store.database import shredded
from gateway.store.schema import archived_messages, destruction_records

DESTROYED = "archive_destroyed"
BATCH = 1000  # messages examined per transaction
SAMPLE = 20  # queue ids shown per hold that kept messages
SHREDDED = "crypto-shred: data key (wrapped_key) and ciphertext (content) set to NULL; "
# What became of the old row versions, by database (docs/security.md).
OLD_VERSIONS = {
    "sqlite": "freed cells zeroed (secure_delete), WAL checkpointed",
    "postgresql": "old row versions reclaimed by VACUUM",
}
OBJECTS_DELETED = "; object-store copies deleted"

_m = archived_messages.c
_d = destruction_records.c
Transaction = Callable[[], AbstractContextManager[Connection]]


class DestructionError(Exception):
    """A run that cannot go on; what it destroyed so far stays destroyed and recorded."""


@dataclass
class Skipped:
    """The due messages one standing hold kept."""

    hold_id: int
    case_ref: str
    count: int = 0
    queue_ids: list[str] = field(default_factory=list)  # the first SAMPLE


@dataclass
class Outcome:
    run_id: str
    dry_run: bool
    examined: int = 0  # messages old enough to be looked at
    destroyed: dict[str, int] = field(default_factory=dict)  # by rule
    record_ids: list[int] = field(default_factory=list)
    held: int = 0  # due messages kept by a hold
    skipped: dict[int, Skipped] = field(default_factory=dict)  # by hold
    seconds: float = 0.0

    @property
    def destroyed_count(self) -> int:
        return sum(self.destroyed.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "examined": self.examined,
            "destroyed": self.destroyed_count,
            "destroyed_by_rule": self.destroyed,
            "records": self.record_ids,
            "held": self.held,
            "skipped": [s.__dict__ for s in self.skipped.values()],
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Batch:
    examined: int
    position: tuple[float, str] | None  # the last message examined
    objects: list[str] = field(default_factory=list)  # to delete once committed


def run(
    transaction: Transaction,
    schedule: Schedule,
    now: float,
    actor: str,
    *,
    dry_run: bool = False,
    batch: int = BATCH,
    storage: ArchiveStorage,
    guard: Callable[[Connection], bool] | None = None,
) -> Outcome:
    """Destroy every message due at `now` that no standing hold covers.

    `transaction` gives a write transaction (a read one for a dry run);
    `guard`, called first in each, may stop the run by returning False (the
    server's lease was lost to another process).
    """
    started = time.monotonic()
    outcome = Outcome(secrets.token_hex(8), dry_run)
    bound = may_be_due_before(schedule, now)
    position: tuple[float, str] | None = None
    while bound is not None:
        with transaction() as conn:
            if guard is not None and not guard(conn):
                break
            step = _batch(conn, schedule, now, bound, position, batch, actor, outcome, storage)
        for key in step.objects:
            storage.delete(key)
        outcome.examined += step.examined
        if step.position is None or step.examined < batch:
            break
        position = step.position
    outcome.seconds = time.monotonic() - started
    return outcome


def _batch(
    conn: Connection,
    schedule: Schedule,
    now: float,
    bound: float,
    position: tuple[float, str] | None,
    size: int,
    actor: str,
    outcome: Outcome,
    storage: ArchiveStorage,
) -> _Batch:
    query = (
        select(_m.queue_id, _m.received_at)
        .where(_m.destroyed_at.is_(None), _m.received_at < bound)
        # destroyed_at first (NULL in every row): the order of its index, which
        # PostgreSQL then reads in order rather than sorting every row not destroyed.
        .order_by(_m.destroyed_at, _m.received_at, _m.queue_id)
        .limit(size)
    )
    if position is not None:
        # The plain bound on received_at as well: PostgreSQL's index scan starts from it,
        # where the row comparison alone would be a filter over every row before it.
        query = query.where(
            _m.received_at >= position[0], tuple_(_m.received_at, _m.queue_id) > tuple_(*position)
        )
    if not outcome.dry_run:
        holds.lock(conn)
    found = conn.execute(query).all()
    step = _Batch(len(found), (found[-1][1], found[-1][0]) if found else None)
    chosen = due(schedule, records.entries(conn, [queue_id for queue_id, _ in found]), now)
    kept = _held(conn, [entry.queue_id for _, entry in chosen], outcome)
    by_rule: dict[str, list[str]] = {}
    for rule, entry in chosen:
        if entry.queue_id not in kept:
            by_rule.setdefault(rule.name, []).append(entry.queue_id)
    if outcome.dry_run or not by_rule:
        for name, queue_ids in by_rule.items():
            outcome.destroyed[name] = outcome.destroyed.get(name, 0) + len(queue_ids)
        return step
    step.objects = _object_keys(conn, [q for group in by_rule.values() for q in group])
    if step.objects and not storage.external:
        raise DestructionError(
            f"{len(step.objects)} due message(s) are kept in an object store, which this "
            "process cannot reach: set archive.storage as the server has it"
        )
    destroyed_at = time.time()
    for name, queue_ids in by_rule.items():
        _destroy(conn, outcome, name, queue_ids, destroyed_at, actor, bool(step.objects))
    shredded(conn)
    return step


def _held(conn: Connection, queue_ids: list[str], outcome: Outcome) -> set[str]:
    """The due messages a standing hold covers, counted per hold in `outcome`."""
    standing = holds.listing(conn)
    kept: set[str] = set()
    for hold_id, covered in holds.held(conn, queue_ids, standing).items():
        case_ref = next(h.case_ref for h in standing if h.id == hold_id)
        skipped = outcome.skipped.setdefault(hold_id, Skipped(hold_id, case_ref))
        skipped.count += len(covered)
        skipped.queue_ids.extend(covered[: SAMPLE - len(skipped.queue_ids)])
        kept.update(covered)
    outcome.held += len(kept)
    return kept


def _object_keys(conn: Connection, queue_ids: list[str]) -> list[str]:
    query = select(_m.object_key).where(_m.queue_id.in_(queue_ids), _m.object_key.is_not(None))
    return [str(key) for key in conn.execute(query).scalars()]


def _destroy(
    conn: Connection,
    outcome: Outcome,
    rule: str,
    queue_ids: list[str],
    destroyed_at: float,
    actor: str,
    with_objects: bool,
) -> None:
    key = conn.execute(
        insert(destruction_records).values(
            run_id=outcome.run_id,
            destroyed_at=destroyed_at,
            rule=rule,
            method=SHREDDED
            + OLD_VERSIONS.get(conn.dialect.name, "")
            + (OBJECTS_DELETED if with_objects else ""),
            queue_ids=json.dumps(queue_ids),
            count=len(queue_ids),
            actor=actor,
        )
    ).inserted_primary_key
    assert key is not None
    record_id = int(key[0])
    conn.execute(
        update(archived_messages)
        .where(_m.queue_id.in_(queue_ids))  # chosen in this transaction: none is destroyed
        .values(wrapped_key=None, content=None, destroyed_at=destroyed_at, destruction_id=record_id)
    )
    detail = f"run={outcome.run_id} rule={rule} record={record_id} count={len(queue_ids)}"
    done = AuditEvent(DESTROYED, "ok", detail=detail, actor=actor, ts=destroyed_at)
    trail.append(conn, [done])
    outcome.destroyed[rule] = outcome.destroyed.get(rule, 0) + len(queue_ids)
    outcome.record_ids.append(record_id)


@dataclass(frozen=True)
class Record:
    id: int
    run_id: str
    destroyed_at: float
    rule: str
    method: str
    queue_ids: list[str]
    count: int
    actor: str


def destruction_log(conn: Connection, since: float | None = None) -> Iterator[Record]:
    """The destruction records, oldest first (those at or after `since`)."""
    query = select(destruction_records).order_by(_d.id).execution_options(yield_per=500)
    if since is not None:
        query = query.where(_d.destroyed_at >= since)
    for row in conn.execute(query).mappings():
        yield Record(
            int(row["id"]),
            row["run_id"],
            row["destroyed_at"],
            row["rule"],
            row["method"],
            json.loads(row["queue_ids"]),
            int(row["count"]),
            row["actor"],
        )
