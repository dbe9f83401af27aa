"""Finding archived messages by their metadata, never by content.

Every search is led by an indexed filter (a sender, a recipient, a domain, a
principal, a Message-ID or a date range), so it reads an index, not the
table, whatever the archive's size; category and PHI only narrow it. The
newest come first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from sqlalchemy import Connection, Select, or_, select

from gateway.archive import records
from gateway.store.schema import archived_messages, archived_recipients

_m, _r = archived_messages, archived_recipients

MAX_LIMIT = 10_000


class SearchError(ValueError):
    """Filters that do not make a search; the message says what to add."""


@dataclass(frozen=True)
class Filters:
    sender: str | None = None  # the envelope sender, as recorded
    recipient: str | None = None
    domain: str | None = None  # the sender's or a recipient's
    principal: str | None = None
    message_id: str | None = None
    category: str | None = None
    phi: bool | None = None
    since: float | None = None  # received at or after
    until: float | None = None  # received before

    def named(self) -> list[str]:
        """The names of the filters given: what an access event records of a search."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


# What leads a search (an index); category and phi only narrow.
LEADING = ("sender", "recipient", "domain", "principal", "message_id", "since", "until")


@dataclass(frozen=True)
class Found(records.ArchiveEntry):
    """An archived message's metadata as search and view show it."""

    storage: str
    destroyed_at: float | None

    @property
    def destroyed(self) -> bool:
        return self.destroyed_at is not None


_COLUMNS = (*records.ENTRY_COLUMNS, _m.c.storage, _m.c.destroyed_at)


def _where(query: Select[tuple[object, ...]], f: Filters) -> Select[tuple[object, ...]]:
    if f.recipient is not None:
        query = query.where(
            _m.c.queue_id.in_(select(_r.c.queue_id).where(_r.c.recipient == f.recipient))
        )
    if f.domain is not None:
        # Two indexes, one per side; each database combines them (SQLite's
        # multi-index OR, PostgreSQL's BitmapOr).
        query = query.where(
            or_(
                _m.c.sender_domain == f.domain,
                _m.c.queue_id.in_(select(_r.c.queue_id).where(_r.c.domain == f.domain)),
            )
        )
    for column, value in (
        (_m.c.sender, f.sender),
        (_m.c.principal, f.principal),
        (_m.c.message_id, f.message_id),
        (_m.c.category, f.category),
        (_m.c.phi, f.phi),
    ):
        if value is not None:
            query = query.where(column == value)
    if f.since is not None:
        query = query.where(_m.c.received_at >= f.since)
    if f.until is not None:
        query = query.where(_m.c.received_at < f.until)
    return query


def _found(conn: Connection, query: Select[tuple[object, ...]]) -> list[Found]:
    rows = conn.execute(query).all()
    recipients = records.recipients_of(conn, [row.queue_id for row in rows])
    return [
        Found(
            **records.entry_fields(row, recipients),
            storage=row.storage,
            destroyed_at=row.destroyed_at,
        )
        for row in rows
    ]


def statement(filters: Filters, limit: int) -> Select[tuple[object, ...]]:
    """The query a search runs (also what the benchmark explains)."""
    if not any(getattr(filters, name) is not None for name in LEADING):
        raise SearchError(
            "give at least one of --sender, --recipient, --domain, --principal, "
            "--message-id, --since or --until (--category and --phi only narrow a search)"
        )
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchError(f"--limit must be between 1 and {MAX_LIMIT}, not {limit}")
    query = select(*_COLUMNS)
    return _where(query, filters).order_by(_m.c.received_at.desc(), _m.c.queue_id).limit(limit)


def search(conn: Connection, query: Select[tuple[object, ...]]) -> list[Found]:
    """The archived messages a `statement` selects (destroyed ones too)."""
    return _found(conn, query)


def described(conn: Connection, queue_ids: Sequence[str]) -> list[Found]:
    """These archived messages, in the order asked; unknown ids are left out."""
    by_id = {
        f.queue_id: f
        for f in _found(conn, select(*_COLUMNS).where(_m.c.queue_id.in_(list(queue_ids))))
    }
    return [by_id[q] for q in queue_ids if q in by_id]
