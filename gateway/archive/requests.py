"""Export requests: who asked for which messages and why, who approved, when used.

Every export goes through a request, kept with its stated reason. Under the
two-person rule a request must be approved by someone other than who made it
before it is used; with or without the rule a request is used once, and one
older than its lifetime (archive.export.request_hours) is neither approved
nor used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Row, insert, select, update

from gateway.archive.access import AccessRefused
from gateway.store.schema import archive_requests

_t = archive_requests


@dataclass(frozen=True)
class Request:
    id: int
    queue_ids: tuple[str, ...]
    reason: str
    requested_by: str
    requested_at: float
    approved_by: str | None
    approved_at: float | None
    used_at: float | None

    def state(self, now: float, lifetime: float) -> str:
        if self.used_at is not None:
            return "used"
        if now >= self.requested_at + lifetime:
            return "expired"
        return "approved" if self.approved_by is not None else "waiting"


def _request(row: Row[tuple[object, ...]]) -> Request:
    r = row._mapping
    return Request(
        r["id"],
        tuple(json.loads(r["queue_ids"])),
        r["reason"],
        r["requested_by"],
        r["requested_at"],
        r["approved_by"],
        r["approved_at"],
        r["used_at"],
    )


def create(conn: Connection, queue_ids: Sequence[str], reason: str, by: str, now: float) -> int:
    """Record a request by person `by`; its id."""
    return int(
        conn.execute(
            insert(_t)
            .values(
                queue_ids=json.dumps(list(queue_ids)),
                reason=reason,
                requested_by=by,
                requested_at=now,
            )
            .returning(_t.c.id)
        ).scalar_one()
    )


def get(conn: Connection, request_id: int) -> Request | None:
    row = conn.execute(select(_t).where(_t.c.id == request_id)).first()
    return _request(row) if row is not None else None


def list_all(conn: Connection, limit: int = 200) -> list[Request]:
    """The newest requests first."""
    return [_request(r) for r in conn.execute(select(_t).order_by(_t.c.id.desc()).limit(limit))]


def _existing(conn: Connection, request_id: int, now: float, lifetime: float) -> Request:
    found = get(conn, request_id)
    if found is None:
        raise AccessRefused(
            "unknown-request", f"no export request #{request_id} (see `phigate archive requests`)"
        )
    state = found.state(now, lifetime)
    if state == "used":
        raise AccessRefused(
            "used", f"request #{request_id} was used already: make a new one to export again"
        )
    if state == "expired":
        raise AccessRefused(
            "expired",
            f"request #{request_id} has expired (archive.export.request_hours): make a new one",
        )
    return found


def approve(conn: Connection, request_id: int, by: str, now: float, lifetime: float) -> Request:
    """Person `by` approves the request; refused for its maker, or once used or expired."""
    found = _existing(conn, request_id, now, lifetime)
    if found.requested_by == by:
        raise AccessRefused(
            "same-person",
            f"request #{request_id} was made by {by}: another admin or auditor must approve it",
        )
    if found.approved_by is not None:
        raise AccessRefused(
            "approved-already", f"request #{request_id} was approved already by {found.approved_by}"
        )
    conn.execute(update(_t).where(_t.c.id == request_id).values(approved_by=by, approved_at=now))
    return get(conn, request_id) or found


def usable(
    conn: Connection, request_id: int, now: float, lifetime: float, *, needs_approval: bool
) -> Request:
    """The request, if an export may use it now: not used, not expired, and approved
    when the two-person rule is on."""
    found = _existing(conn, request_id, now, lifetime)
    if needs_approval and found.approved_by is None:
        raise AccessRefused(
            "not-approved",
            f"request #{request_id} is not approved yet: the two-person rule needs another "
            f"admin or auditor to run `phigate archive approve {request_id}`",
        )
    return found


def use(
    conn: Connection, request_id: int, now: float, lifetime: float, *, needs_approval: bool
) -> Request:
    """Mark the request used, once: a second export of it is refused, even a concurrent one."""
    found = usable(conn, request_id, now, lifetime, needs_approval=needs_approval)
    taken = conn.execute(
        update(_t).where(_t.c.id == request_id, _t.c.used_at.is_(None)).values(used_at=now)
    )
    if taken.rowcount != 1:
        raise AccessRefused("used", f"request #{request_id} was used already")
    return found
