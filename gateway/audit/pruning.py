"""Pruning the audit trail: events older than their retention, cut at a signed checkpoint.

Each event links to the one before, and a checkpoint counts the events from
the trail's start. So events go only up to a checkpoint, the anchor: every
event through its event id, and the checkpoints before it. The anchor stays,
and `audit verify` starts from it: the first kept event must link to its
hash, and counting resumes at its count. An `audit_pruned` event appended in
the same transaction names the anchor; verify accepts a trail that starts
after an anchor only when the newest such event names that anchor, so events
removed beyond it (or the pruning event itself) are still found.

What is to go is verified first (reading, outside the write lock): a damaged
stretch is kept as evidence, and nothing is pruned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, select

from gateway.audit import checkpoints, trail
from gateway.audit.checkpoints import Checkpoint
from gateway.audit.trail import GENESIS, AuditEvent, walk
from gateway.store.audit_key import AuditKey
from gateway.store.schema import audit_checkpoints, audit_events, audit_recipients

PRUNED = "audit_pruned"
_THROUGH = re.compile(r"through=(\d+) ")

_e = audit_events.c


class AuditDamaged(Exception):
    """The stretch to prune does not verify: it is kept, and `phigate audit verify` says why."""


@dataclass(frozen=True)
class Pruned:
    through_event: int
    checkpoint_id: int
    events: int


def first_event_id(conn: Connection) -> int | None:
    return conn.execute(select(func.min(_e.id))).scalar()


def anchor(first_event: int | None, trusted: list[Checkpoint]) -> Checkpoint | None:
    """The checkpoint a pruned trail starts after: the newest authentic one before its
    first stored event; None when nothing before that was ever checkpointed."""
    if first_event is None:
        return None
    before = [cp for cp in trusted if 0 < cp.event_id < first_event]
    return max(before, key=lambda cp: (cp.event_id, cp.created_at), default=None)


def recorded_through(conn: Connection) -> int | None:
    """The event id the newest `audit_pruned` event says the trail was pruned through."""
    query = select(_e.detail).where(_e.event == PRUNED).order_by(_e.id.desc()).limit(1)
    detail = conn.execute(query).scalar()
    found = _THROUGH.match(detail or "")
    return int(found.group(1)) if found else None


def due(conn: Connection, key: AuditKey, before: float) -> Checkpoint | None:
    """The checkpoint to prune through for events older than `before`: the newest
    authentic one made before then, past the current start, whose stretch verifies
    (AuditDamaged otherwise); None when there is nothing to prune."""
    trusted = [cp for cp in checkpoints.every(conn) if cp.authentic(key)]
    first, last = conn.execute(select(func.min(_e.id), func.max(_e.id))).one()
    if first is None:
        return None
    # The head stays: the pruning's own event must extend the chain from it.
    older = [cp for cp in trusted if cp.created_at < before and first <= cp.event_id < last]
    target = max(older, key=lambda cp: cp.event_id, default=None)
    if target is None:
        return None
    start = anchor(first, trusted)
    count = start.count if start is not None else 0
    last_hash = start.hash if start is not None else GENESIS
    for chained in walk(conn, key, last_hash, until=target.event_id):
        count += 1
        if not (chained.link_ok and chained.hash_ok):
            raise AuditDamaged(
                f"audit event {chained.id} does not verify: nothing was pruned; "
                "run `phigate audit verify` and keep the trail as evidence"
            )
        last_hash = chained.hash
    if last_hash != target.hash or count != target.count:
        raise AuditDamaged(
            f"the trail up to {target.label} no longer matches it: nothing was pruned; "
            "run `phigate audit verify` and keep the trail as evidence"
        )
    return target


def prune(conn: Connection, target: Checkpoint, actor: str, now: float) -> Pruned:
    """Remove every event through `target` (found by `due`) and the checkpoints before
    it, and record the pruning, in the caller's write transaction."""
    assert target.id is not None
    trail.lock_chain(conn)
    through = target.event_id
    conn.execute(delete(audit_recipients).where(audit_recipients.c.event_id <= through))
    removed = conn.execute(delete(audit_events).where(_e.id <= through)).rowcount
    conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.event_id < through))
    detail = f"through={through} checkpoint={target.id} count={target.count} removed={removed}"
    trail.append(conn, [AuditEvent(PRUNED, "ok", detail=detail, actor=actor, ts=now)])
    return Pruned(through, target.id, int(removed))
