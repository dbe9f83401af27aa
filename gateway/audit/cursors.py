"""Named export cursors: where each export of the audit trail stopped.

A cursor is the id of the last event handed over. Ids are given out under
the chain's lock (gateway.audit.trail), so an event committed later always
has a larger id than every event committed before it: "the events after the
cursor" never skips one. A cursor moves only after what it covers was written
out (`phigate audit export`) or sent (the forwarder), so a crash in between
repeats events rather than losing them: at-least-once, with the event id to
drop the repeats.

The forwarder holds its cursor with a lease (`holder`, `lease_until`), so one
process forwards at a time however many processes or nodes share the store;
another takes over when the lease runs out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, func, or_, select, update

from gateway.config import CURSOR_NAME
from gateway.store.schema import audit_events, audit_export_cursors
from gateway.store.upsert import on_conflict_insert

_c = audit_export_cursors.c
_NAME = re.compile(CURSOR_NAME)


class CursorError(Exception):
    """A cursor that cannot be used or moved; the message says why and what to do."""


@dataclass(frozen=True)
class Cursor:
    name: str
    event_id: int  # the last event handed over; 0: none yet
    updated_at: float
    holder: str | None  # the forwarding process holding it, while its lease lasts
    lease_until: float | None

    def leased(self, now: float) -> bool:
        return self.holder is not None and (self.lease_until or 0.0) > now


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise CursorError(
            f"cursor name {name!r} is not usable: write 1 to 64 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit (e.g. siem-nightly)"
        )
    return name


def get(conn: Connection, name: str) -> Cursor | None:
    row = conn.execute(select(audit_export_cursors).where(_c.name == name)).first()
    if row is None:
        return None
    return Cursor(row.name, int(row.event_id), row.updated_at, row.holder, row.lease_until)


@dataclass(frozen=True)
class Lag:
    events: int  # events after the cursor
    seconds: float  # age of the oldest of them; 0 when there is none


def lag(conn: Connection, name: str, now: float) -> Lag:
    """How far behind the trail's head a cursor is (a missing cursor: the whole trail)."""
    cursor = get(conn, name)
    after = audit_events.c.id > (cursor.event_id if cursor is not None else 0)
    behind = conn.execute(select(func.count()).select_from(audit_events).where(after)).scalar_one()
    oldest = conn.execute(
        select(audit_events.c.ts).where(after).order_by(audit_events.c.id).limit(1)
    ).scalar()
    return Lag(int(behind), max(0.0, now - oldest) if oldest is not None else 0.0)


def _create(conn: Connection, name: str, now: float) -> bool:
    """Insert the cursor at 0; False if it exists already."""
    insert = on_conflict_insert(conn, audit_export_cursors)
    created = conn.execute(
        insert.values(name=name, event_id=0, updated_at=now)
        .on_conflict_do_nothing()
        .returning(_c.name)
    )
    return created.first() is not None


def advance(conn: Connection, name: str, expected: int, to: int, now: float) -> None:
    """Move a cursor from `expected` to `to` (creating it), or raise CursorError.

    Compare-and-set: if another export moved it meanwhile, or the forwarder
    holds it, nothing changes and the error says so.
    """
    moved = conn.execute(
        update(audit_export_cursors)
        .where(
            _c.name == name,
            _c.event_id == expected,
            or_(_c.holder.is_(None), _c.lease_until <= now),
        )
        .values(event_id=to, updated_at=now, holder=None, lease_until=None)
    ).rowcount
    if moved == 1:
        return
    if expected == 0 and _create(conn, name, now):
        advance(conn, name, 0, to, now)
        return
    raise CursorError(
        f"cursor {name!r} was moved by something else while this export ran (another "
        "export with the same cursor, or the live forwarder): it stays where that left it, "
        "and the events written here will be exported again by the next run"
    )


def take_lease(conn: Connection, name: str, holder: str, now: float, until: float) -> int | None:
    """Hold the cursor until `until` if it is free, expired or already ours.

    Returns the cursor's position when held, None when another holds it.
    """
    _create(conn, name, now)
    taken = conn.execute(
        update(audit_export_cursors)
        .where(
            _c.name == name,
            or_(_c.holder.is_(None), _c.holder == holder, _c.lease_until <= now),
        )
        .values(holder=holder, lease_until=until)
    ).rowcount
    if taken != 1:
        return None
    position = conn.execute(select(_c.event_id).where(_c.name == name)).scalar_one()
    return int(position)


def move_held(conn: Connection, name: str, holder: str, to: int, now: float, until: float) -> bool:
    """The holder moves its cursor forward to `to` and renews its lease.

    False if the lease was lost (another process took over): the cursor stays.
    """
    moved = conn.execute(
        update(audit_export_cursors)
        .where(_c.name == name, _c.holder == holder, _c.event_id <= to)
        .values(event_id=to, updated_at=now, lease_until=until)
    ).rowcount
    return moved == 1


def release(conn: Connection, name: str, holder: str) -> None:
    """Give the lease up (at shutdown), so another process need not wait it out."""
    conn.execute(
        update(audit_export_cursors)
        .where(_c.name == name, _c.holder == holder)
        .values(holder=None, lease_until=None)
    )


def restart_at_head(conn: Connection, name: str, now: float) -> int:
    """Put a cursor at the trail's newest event (creating it), whoever holds it; the
    position. For a consumer that wants nothing from before this moment (the first
    webhook subscription): a holder mid-pass loses its move (`move_held` never
    moves a cursor back) and reads on from here."""
    head = int(conn.execute(select(func.coalesce(func.max(audit_events.c.id), 0))).scalar_one())
    _create(conn, name, now)
    conn.execute(
        update(audit_export_cursors).where(_c.name == name).values(event_id=head, updated_at=now)
    )
    return head
