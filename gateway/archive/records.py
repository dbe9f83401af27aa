"""Archived messages as rows: what is kept of each, written and read in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from gateway.mail.addresses import domain_of
from gateway.store.keyring import Sealed
from gateway.store.prepared import Prepared
from gateway.store.schema import archived_messages, archived_recipients

MESSAGE = "message"
PORTAL_REPLY = "portal_reply"
DATABASE = "database"


@dataclass(frozen=True)
class ArchiveEntry:
    """An archived message's metadata: what search, retention and holds select on."""

    queue_id: str
    kind: str  # MESSAGE | PORTAL_REPLY
    received_at: float
    message_id: str | None
    principal: str | None
    sender: str  # envelope sender, "" for the null sender
    recipients: tuple[str, ...]
    category: str
    phi: bool
    size: int
    sha256: str  # of the accepted bytes

    @property
    def sender_domain(self) -> str:
        return domain_of(self.sender) if self.sender else ""


_INSERT_MESSAGE = Prepared(
    insert(archived_messages),
    (
        "queue_id", "kind", "received_at", "message_id", "principal", "sender", "sender_domain",
        "category", "phi", "size", "sha256", "storage", "object_key", "key_id", "wrapped_key",
        "content",
    ),
)  # fmt: skip
_INSERT_RECIPIENT = Prepared(insert(archived_recipients), ("queue_id", "recipient", "domain"))


def record(
    conn: Connection,
    entry: ArchiveEntry,
    sealed: Sealed,
    *,
    storage: str = DATABASE,
    object_key: str | None = None,
) -> None:
    """Record an archived message; the ciphertext goes in the row unless it is kept in an
    object store under `object_key`. Intake runs it for every message: prepared statements."""
    _INSERT_MESSAGE.run(
        conn,
        {
            "queue_id": entry.queue_id,
            "kind": entry.kind,
            "received_at": entry.received_at,
            "message_id": entry.message_id,
            "principal": entry.principal,
            "sender": entry.sender,
            "sender_domain": entry.sender_domain,
            "category": entry.category,
            "phi": entry.phi,
            "size": entry.size,
            "sha256": entry.sha256,
            "storage": storage,
            "object_key": object_key,
            "key_id": sealed.key_id,
            "wrapped_key": sealed.wrapped_key,
            "content": sealed.ciphertext if object_key is None else None,
        },
    )
    rows = [
        {"queue_id": entry.queue_id, "recipient": r, "domain": domain_of(r)}
        for r in dict.fromkeys(entry.recipients)
    ]
    if len(rows) == 1:  # most mail: a plain execute costs less than executemany
        _INSERT_RECIPIENT.run(conn, rows[0])
    elif rows:
        _INSERT_RECIPIENT.run_many(conn, rows)


def recipients_of(conn: Connection, queue_ids: Sequence[str]) -> dict[str, list[str]]:
    """Each archived message's recipients, sorted."""
    found: dict[str, list[str]] = {}
    if queue_ids:
        r = archived_recipients.c
        for queue_id, recipient in conn.execute(
            select(r.queue_id, r.recipient)
            .where(r.queue_id.in_(list(queue_ids)))
            .order_by(r.queue_id, r.recipient)
        ):
            found.setdefault(queue_id, []).append(recipient)
    return found


_m = archived_messages.c
# An entry's columns (never the content: a batch of rows' would be read for nothing).
ENTRY_COLUMNS = (
    _m.queue_id, _m.kind, _m.received_at, _m.message_id, _m.principal, _m.sender,
    _m.category, _m.phi, _m.size, _m.sha256,
)  # fmt: skip


def entry_fields(row: Any, recipients: Mapping[str, list[str]]) -> dict[str, Any]:
    """An ArchiveEntry's fields by name, from a row of ENTRY_COLUMNS (and more)."""
    return {
        "queue_id": row.queue_id,
        "kind": row.kind,
        "received_at": row.received_at,
        "message_id": row.message_id,
        "principal": row.principal,
        "sender": row.sender,
        "recipients": tuple(recipients.get(row.queue_id, ())),
        "category": row.category,
        "phi": bool(row.phi),
        "size": row.size,
        "sha256": row.sha256,
    }


def entries(conn: Connection, queue_ids: Sequence[str]) -> list[ArchiveEntry]:
    """The metadata of these archived messages (destroyed ones included), in the order asked."""
    rows = conn.execute(select(*ENTRY_COLUMNS).where(_m.queue_id.in_(list(queue_ids)))).all()
    recipients = recipients_of(conn, queue_ids)
    found = {row.queue_id: ArchiveEntry(**entry_fields(row, recipients)) for row in rows}
    return [found[q] for q in queue_ids if q in found]


def sealed_content(conn: Connection, queue_id: str) -> tuple[Sealed, str | None] | None:
    """The sealed copy and its object key (None: the ciphertext is in the row); None once
    destroyed or never archived."""
    row = conn.execute(
        select(
            archived_messages.c.key_id,
            archived_messages.c.wrapped_key,
            archived_messages.c.content,
            archived_messages.c.object_key,
        ).where(archived_messages.c.queue_id == queue_id)
    ).first()
    if row is None or row.wrapped_key is None:
        return None
    return Sealed(row.key_id, row.wrapped_key, row.content or b""), row.object_key
