"""Portal copies: one sealed copy per recipient of mode `portal`, and its life.

waiting -> opened (first view) -> replied; any open state -> expired (its
time ran out) or recalled (by an admin or the sending system). Closing a copy
shreds it: its wrapped key and ciphertext are set to NULL in the same
transaction (and the SQLite pages are wiped, see database.shredded). Functions
take a Connection and run in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    and_,
    delete,
    insert,
    or_,
    select,
    update,
)

from gateway.store.database import shredded
from gateway.store.keyring import Sealed
from gateway.store.schema import portal_messages, portal_sessions

WAITING, OPENED, REPLIED, EXPIRED, RECALLED = "waiting", "opened", "replied", "expired", "recalled"
STATES = (WAITING, OPENED, REPLIED, EXPIRED, RECALLED)
OPEN_STATES = (WAITING, OPENED, REPLIED)  # readable while not past expires_at
CODE, PASSPHRASE = "code", "passphrase"


@dataclass(frozen=True)
class NewCopy:
    queue_id: str
    recipient: str
    sender: str
    principal: str | None
    verifier: str
    sealed: Sealed
    access: str  # CODE | PASSPHRASE
    passphrase_hash: str | None
    show_sender: bool
    read_receipt: bool
    notice_queue_id: str
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class Copy:
    """A copy's metadata (and, where asked for, its sealed content)."""

    id: int
    queue_id: str
    recipient: str
    sender: str
    principal: str | None
    state: str
    access: str
    passphrase_hash: str | None
    show_sender: bool
    read_receipt: bool
    notice_queue_id: str | None
    created_at: float
    expires_at: float
    opened_at: float | None
    replied_at: float | None
    closed_at: float | None
    views: int
    downloads: int
    code_hash: str | None
    code_expires_at: float | None
    codes_sent: int
    codes_window_start: float | None
    failed_codes: int
    locked_until: float | None
    sealed: Sealed | None = None  # None when not loaded or shredded

    def readable(self, now: float) -> bool:
        return self.state in OPEN_STATES and now < self.expires_at

    def shown_state(self, now: float) -> str:
        """The state an admin sees: an open copy past its time is expired already."""
        return EXPIRED if self.state in OPEN_STATES and now >= self.expires_at else self.state


# The verifier finds a copy; it is not part of what callers see of one.
_METADATA = [
    c for c in portal_messages.c if c.name not in ("verifier", "key_id", "wrapped_key", "content")
]


def _copy(row: RowMapping, with_content: bool = False) -> Copy:
    fields = {c.name: row[c.name] for c in _METADATA}
    sealed = None
    if with_content and row["wrapped_key"] is not None and row["content"] is not None:
        sealed = Sealed(row["key_id"], row["wrapped_key"], row["content"])
    return Copy(**fields, sealed=sealed)


def insert_copy(conn: Connection, copy: NewCopy) -> int:
    result = conn.execute(
        insert(portal_messages).values(
            queue_id=copy.queue_id,
            recipient=copy.recipient,
            sender=copy.sender,
            principal=copy.principal,
            verifier=copy.verifier,
            state=WAITING,
            access=copy.access,
            passphrase_hash=copy.passphrase_hash,
            show_sender=copy.show_sender,
            read_receipt=copy.read_receipt,
            notice_queue_id=copy.notice_queue_id,
            created_at=copy.created_at,
            expires_at=copy.expires_at,
            views=0,
            downloads=0,
            codes_sent=0,
            failed_codes=0,
            key_id=copy.sealed.key_id,
            wrapped_key=copy.sealed.wrapped_key,
            content=copy.sealed.ciphertext,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def stored_for(conn: Connection, queue_id: str, recipient: str) -> Copy | None:
    """The copy already made for this recipient of this message (a repeated delivery)."""
    row = (
        conn.execute(
            select(*_METADATA).where(
                portal_messages.c.queue_id == queue_id, portal_messages.c.recipient == recipient
            )
        )
        .mappings()
        .first()
    )
    return _copy(row) if row is not None else None


def by_verifier(conn: Connection, verifier: str, with_content: bool = True) -> Copy | None:
    """The copy a link opens; its sealed content too unless `with_content` is false
    (pages that only check the copy's state need not read a large message)."""
    columns = portal_messages.c if with_content else _METADATA
    row = (
        conn.execute(select(*columns).where(portal_messages.c.verifier == verifier))
        .mappings()
        .first()
    )
    return _copy(row, with_content) if row is not None else None


def by_id(conn: Connection, copy_id: int) -> Copy | None:
    row = conn.execute(select(*_METADATA).where(portal_messages.c.id == copy_id)).mappings().first()
    return _copy(row) if row is not None else None


def of_message(conn: Connection, queue_id: str) -> list[Copy]:
    rows = conn.execute(
        select(*_METADATA)
        .where(portal_messages.c.queue_id == queue_id)
        .order_by(portal_messages.c.id)
    ).mappings()
    return [_copy(row) for row in rows]


def by_ids(conn: Connection, copy_ids: Sequence[int]) -> list[Copy]:
    rows = conn.execute(
        select(*_METADATA)
        .where(portal_messages.c.id.in_(list(copy_ids)))
        .order_by(portal_messages.c.id)
    ).mappings()
    return [_copy(row) for row in rows]


def _shown_as(state: str, now: float) -> ColumnElement[bool]:
    """The copies `Copy.shown_state(now)` calls `state`."""
    c = portal_messages.c
    if state == EXPIRED:
        return or_(c.state == EXPIRED, and_(c.state.in_(OPEN_STATES), c.expires_at <= now))
    if state in OPEN_STATES:
        return and_(c.state == state, c.expires_at > now)
    return c.state == state


def listing(
    conn: Connection, limit: int = 1000, shown: tuple[str, float] | None = None
) -> list[Copy]:
    """The newest copies first; with `shown` (state, now), only those shown in that state."""
    query = select(*_METADATA).order_by(portal_messages.c.id.desc()).limit(limit)
    if shown is not None:
        query = query.where(_shown_as(*shown))
    return [_copy(row) for row in conn.execute(query).mappings()]


def record_view(conn: Connection, copy_id: int, now: float) -> bool:
    """Count a view; True if it was the first (the copy is now opened)."""
    first = conn.execute(
        update(portal_messages)
        .where(portal_messages.c.id == copy_id, portal_messages.c.state == WAITING)
        .values(state=OPENED, opened_at=now)
    ).rowcount
    conn.execute(
        update(portal_messages)
        .where(portal_messages.c.id == copy_id)
        .values(views=portal_messages.c.views + 1)
    )
    return bool(first)


def record_download(conn: Connection, copy_id: int) -> None:
    conn.execute(
        update(portal_messages)
        .where(portal_messages.c.id == copy_id)
        .values(downloads=portal_messages.c.downloads + 1)
    )


def record_reply(conn: Connection, copy_id: int, now: float) -> None:
    conn.execute(
        update(portal_messages)
        .where(portal_messages.c.id == copy_id, portal_messages.c.state.in_(OPEN_STATES))
        .values(state=REPLIED, replied_at=now)
    )


def close(conn: Connection, copy_ids: Sequence[int], state: str, now: float) -> list[int]:
    """Expire or recall open copies and shred them; returns the ids closed now."""
    assert state in (EXPIRED, RECALLED)
    # FOR UPDATE (PostgreSQL): a concurrent closer waits, then finds the copy closed,
    # so a copy is closed (and audited) once.
    closing = list(
        conn.execute(
            select(portal_messages.c.id)
            .where(
                portal_messages.c.id.in_(list(copy_ids)),
                portal_messages.c.state.in_(OPEN_STATES),
            )
            .with_for_update()
        ).scalars()
    )
    if not closing:
        return []
    conn.execute(
        update(portal_messages)
        .where(portal_messages.c.id.in_(closing))
        .values(
            state=state,
            closed_at=now,
            key_id=None,
            wrapped_key=None,
            content=None,
            code_hash=None,
            passphrase_hash=None,
        )
    )
    conn.execute(delete(portal_sessions).where(portal_sessions.c.portal_id.in_(closing)))
    shredded(conn)
    return closing


def due_to_expire(conn: Connection, now: float, limit: int = 200) -> list[int]:
    return list(
        conn.execute(
            select(portal_messages.c.id)
            .where(portal_messages.c.state.in_(OPEN_STATES), portal_messages.c.expires_at <= now)
            .order_by(portal_messages.c.expires_at)
            .limit(limit)
        ).scalars()
    )


def extend(conn: Connection, copy_id: int, expires_at: float) -> bool:
    """Set a new expiry for an open copy; False if it is closed already."""
    return bool(
        conn.execute(
            update(portal_messages)
            .where(portal_messages.c.id == copy_id, portal_messages.c.state.in_(OPEN_STATES))
            .values(expires_at=expires_at)
        ).rowcount
    )
