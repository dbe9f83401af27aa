"""The audit trail: metadata-only events, each hash-chained to the one before.

An event holds identifiers, addresses, sizes, codes and short fixed reasons —
never subject, body, attachment names or header values other than Message-ID
(itself a keyed hash when it names a patient: gateway.inspect.header_values).
The chain is extended inside the caller's write transaction, so an event is
durable exactly when the state change it describes is.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from sqlalchemy import Connection, insert, select

from gateway.store.database import transaction_cache
from gateway.store.schema import audit_events

GENESIS = "0" * 64
# Built once: appending happens for every message (see gateway.store.queue).
_CHAIN_HEAD = select(audit_events.c.hash).order_by(audit_events.c.id.desc()).limit(1)
_INSERT_EVENT = insert(audit_events)


@dataclass(frozen=True)
class AuditEvent:
    event: str  # e.g. auth, accepted, refused, delivered, deferred, bounced
    result: str  # e.g. ok, failed, refused, 250
    queue_id: str | None = None
    principal: str | None = None
    client_ip: str | None = None
    sender: str | None = None
    recipients: Sequence[str] = field(default_factory=tuple)
    size: int | None = None
    code: int | None = None
    detail: str | None = None
    ts: float = field(default_factory=time.time)


def _digest(prev_hash: str, row: dict[str, object]) -> str:
    payload = json.dumps(row, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev_hash + payload).encode()).hexdigest()


def _row(event: AuditEvent) -> dict[str, object]:
    row = asdict(event)
    row["recipients"] = json.dumps(list(event.recipients))
    return row


def append(conn: Connection, events: Iterable[AuditEvent]) -> None:
    """Append events to the chain within the current transaction."""
    rows = [_row(e) for e in events]
    if not rows:
        return
    # The chain head is read once per transaction: BEGIN IMMEDIATE (or row
    # locks on PostgreSQL) keeps other writers out until COMMIT.
    cache = transaction_cache(conn)
    prev = cache.get("audit_head")
    if prev is None:
        last = conn.execute(_CHAIN_HEAD).scalar()
        prev = last or GENESIS
    for row in rows:
        row["prev_hash"] = prev
        row["hash"] = prev = _digest(prev, {k: v for k, v in row.items() if k != "prev_hash"})
    conn.execute(_INSERT_EVENT, rows)
    cache["audit_head"] = prev


@dataclass(frozen=True)
class ChainProblem:
    event_id: int
    reason: str


def verify(conn: Connection) -> tuple[int, list[ChainProblem]]:
    """Recompute the chain; returns (events checked, problems found)."""
    problems: list[ChainProblem] = []
    prev = GENESIS
    count = 0
    columns = [c for c in audit_events.c if c.name not in ("id", "prev_hash", "hash")]
    query = select(audit_events).order_by(audit_events.c.id)
    for row in conn.execute(query).mappings():
        count += 1
        if row["prev_hash"] != prev:
            problems.append(ChainProblem(row["id"], "link to the previous event is broken"))
        data = {c.name: row[c.name] for c in columns}
        if _digest(row["prev_hash"], data) != row["hash"]:
            problems.append(ChainProblem(row["id"], "event content does not match its hash"))
        prev = row["hash"]
    return count, problems
