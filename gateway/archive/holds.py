"""Legal holds: while one stands, no archived message its selector covers is destroyed.

A selector names messages by queue id, principal, sender, recipient, domain
(the sender's or any recipient's), arrival window and category; every part
written must hold. Which messages a hold covers is decided in SQL by
`covers`, the one definition the retention run and `explain` both use.
Placing and releasing a hold is audited with who did it; the case reference
and reason stay in the hold's row, out of the audit trail's detail (they
are free text and could name a patient).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, func, insert, select, update

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.store.schema import archived_messages, archived_recipients, legal_holds

PLACED = "legal_hold_placed"
RELEASED = "legal_hold_released"
# PostgreSQL: one lock id for "holds and destruction" (held until COMMIT), so a
# hold placed while a batch is destroyed either is seen by it or comes after it.
# SQLite needs none: every write transaction holds the database's write lock.
_HOLD_LOCK_ID = 0x706869676174_03  # "phigat" + 3

_m = archived_messages.c
_r = archived_recipients.c
_h = legal_holds.c


class HoldError(Exception):
    """A hold that cannot be placed or released; the message says why and what to do."""


@dataclass(frozen=True)
class Selector:
    """Which archived messages a hold covers. Addresses and domains compare case-blind."""

    queue_ids: tuple[str, ...] = ()
    principal: str | None = None
    sender: str | None = None
    recipient: str | None = None
    domain: str | None = None  # the sender's or any recipient's
    since: float | None = None  # received at or after
    until: float | None = None  # received before
    category: str | None = None

    @property
    def parts(self) -> list[str]:
        """The names of the parts written (what the audit event names)."""
        return [f.name for f in fields(self) if getattr(self, f.name) not in (None, ())]

    def as_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v not in (None, ())})

    @classmethod
    def from_json(cls, text: str) -> Selector:
        data: dict[str, Any] = json.loads(text)
        data["queue_ids"] = tuple(data.get("queue_ids", ()))
        return cls(**data)


def lock(conn: Connection) -> None:
    """Order this transaction with every other that places holds or destroys (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_HOLD_LOCK_ID)))


def covers(selector: Selector) -> ColumnElement[bool]:
    """The condition on archived_messages under which `selector` covers a row."""
    parts: list[ColumnElement[bool]] = []
    if selector.queue_ids:
        parts.append(_m.queue_id.in_(selector.queue_ids))
    # Principal and arrival are compared as expressions ("|| ''", "+ 0"), not as the
    # indexed columns: asked about a batch of queue ids, SQLite would otherwise walk
    # the whole principal's (or window's) index entries rather than the batch's rows.
    if selector.principal is not None:
        parts.append((_m.principal + "") == selector.principal)
    if selector.sender is not None:
        parts.append(func.lower(_m.sender) == selector.sender.lower())
    if selector.recipient is not None:
        parts.append(_any_recipient(func.lower(_r.recipient) == selector.recipient.lower()))
    if selector.domain is not None:
        domain = selector.domain.lower()
        parts.append(
            (func.lower(_m.sender_domain) == domain)
            | _any_recipient(func.lower(_r.domain) == domain)
        )
    if selector.since is not None:
        parts.append((_m.received_at + 0) >= selector.since)
    if selector.until is not None:
        parts.append((_m.received_at + 0) < selector.until)
    if selector.category is not None:
        parts.append(_m.category == selector.category)
    if not parts:  # refused when placed; a row written by hand must not cover everything
        raise HoldError("a hold's selector is empty")
    return and_(*parts)


def _any_recipient(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(_r.queue_id == _m.queue_id, condition)


@dataclass(frozen=True)
class Hold:
    id: int
    case_ref: str
    reason: str
    selector: Selector
    created_at: float
    created_by: str
    released_at: float | None
    released_by: str | None
    release_reason: str | None

    @property
    def standing(self) -> bool:
        return self.released_at is None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["selector"] = json.loads(self.selector.as_json())
        return data


def _hold(row: Any) -> Hold:
    return Hold(
        int(row.id),
        row.case_ref,
        row.reason,
        Selector.from_json(row.selector),
        row.created_at,
        row.created_by,
        row.released_at,
        row.released_by,
        row.release_reason,
    )


def place(
    conn: Connection, case_ref: str, reason: str, selector: Selector, actor: str, now: float
) -> Hold:
    """Place a hold (and audit it) in the caller's transaction."""
    if not selector.parts:
        raise HoldError(
            "a hold needs a selector: give at least one of --queue-id, --principal, --sender, "
            "--recipient, --domain, --since, --until, --category"
        )
    lock(conn)
    values = {
        "case_ref": case_ref,
        "reason": reason,
        "selector": selector.as_json(),
        "created_at": now,
        "created_by": actor,
    }
    key = conn.execute(insert(legal_holds).values(**values)).inserted_primary_key
    assert key is not None
    hold_id = int(key[0])
    detail = f"hold={hold_id} selector={','.join(selector.parts)}"
    trail.append(conn, [AuditEvent(PLACED, "ok", detail=detail, actor=actor, ts=now)])
    return Hold(hold_id, case_ref, reason, selector, now, actor, None, None, None)


def release(conn: Connection, hold_id: int, reason: str, actor: str, now: float) -> Hold:
    """Release a standing hold (and audit it); HoldError if there is none by that id."""
    found = get(conn, hold_id)
    if found is None:
        raise HoldError(f"no legal hold #{hold_id}: `phigate hold ls --all` lists them")
    if not found.standing:
        raise HoldError(
            f"legal hold #{hold_id} was already released by {found.released_by}; nothing changed"
        )
    conn.execute(
        update(legal_holds)
        .where(_h.id == hold_id, _h.released_at.is_(None))
        .values(released_at=now, released_by=actor, release_reason=reason)
    )
    detail = f"hold={hold_id}"
    trail.append(conn, [AuditEvent(RELEASED, "ok", detail=detail, actor=actor, ts=now)])
    released = get(conn, hold_id)
    assert released is not None
    return released


def get(conn: Connection, hold_id: int) -> Hold | None:
    row = conn.execute(select(legal_holds).where(_h.id == hold_id)).first()
    return _hold(row) if row is not None else None


def listing(conn: Connection, *, released_too: bool = False) -> list[Hold]:
    query = select(legal_holds).order_by(_h.id)
    if not released_too:
        query = query.where(_h.released_at.is_(None))
    return [_hold(row) for row in conn.execute(query)]


def held(conn: Connection, queue_ids: Sequence[str], holds: Sequence[Hold]) -> dict[int, list[str]]:
    """Which of these messages each hold covers (holds covering none are left out)."""
    found: dict[int, list[str]] = {}
    if not queue_ids:
        return found
    for hold in holds:
        query = select(_m.queue_id).where(_m.queue_id.in_(list(queue_ids)), covers(hold.selector))
        covered = list(conn.execute(query).scalars())
        if covered:
            found[hold.id] = covered
    return found


def covering(conn: Connection, queue_id: str, *, released_too: bool = False) -> list[Hold]:
    """The holds that cover one message (standing ones, or every one)."""
    holds = listing(conn, released_too=released_too)
    covered = held(conn, [queue_id], holds)
    return [h for h in holds if h.id in covered]


def covered_count(conn: Connection, hold: Hold) -> tuple[int, int]:
    """How many archived messages a hold covers: (in all, not yet destroyed)."""
    query = select(func.count(), func.count(_m.wrapped_key)).where(covers(hold.selector))
    total, kept = conn.execute(query).one()
    return int(total), int(kept)
