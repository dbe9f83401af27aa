"""Searching the audit trail: filters, pages by event id, and counts by kind.

The queries a reviewer runs (`phigate audit search`, and any page or report
built on them): each filter reads an index — the event columns, the derived
search keys (gateway.store.audit_facets) or `audit_recipients` — so a search over
millions of events answers in milliseconds. Results hold what the trail
holds: metadata only. The search keys are filled in behind the chain
(gateway.audit.indexer): whoever searches brings the index up to date first
(`indexer.catch_up`, or `Indexer.run_once` in the server), or the newest
events would be missing from filters on them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, and_, func, or_, select

from gateway.store.audit_facets import domain_of, listed_recipients
from gateway.store.schema import audit_events, audit_recipients

MAX_LIMIT = 10_000
_c = audit_events.c
_r = audit_recipients.c
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class FilterError(ValueError):
    """A filter that cannot be read; the message says which and how to write it."""


def parse_when(text: str, *, end: bool = False) -> float:
    """UNIX seconds of a date (YYYY-MM-DD) or ISO time; UTC unless it names an offset.

    A date is its first moment; with `end`, the first moment of the next day,
    so that an --until date includes the whole day.
    """
    try:
        if _DAY.match(text):
            day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
            return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(
            f"{text!r} is not a date or time: write 2026-12-04, 2026-12-04T09:30 or "
            "2026-12-04T09:30:00+01:00 (UTC unless an offset is given)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True)
class Filters:
    """What to look for; every filter given must hold (None or empty: any)."""

    since: float | None = None  # ts >= since
    until: float | None = None  # ts < until
    queue_id: str | None = None  # recorded under it, or a dsn / portal mail about it
    message_id: str | None = None  # the messages accepted with this Message-ID, as stored
    principal: str | None = None
    sender: str | None = None
    recipient: str | None = None  # any case
    recipient_domain: str | None = None  # any case
    events: tuple[str, ...] = ()  # any of these kinds
    rule: str | None = None  # policy decisions by this rule ("defaults": none matched)
    policy_version: str | None = None
    mode: str | None = None  # delivery mode of an attempt
    tls: str | None = None  # gateway.store.audit_facets.TLS_KINDS
    result: str | None = None
    actor: str | None = None  # who made an admin change


def _about_message(queue_ids: Any) -> ColumnElement[bool]:
    return or_(_c.queue_id.in_(queue_ids), _c.about.in_(queue_ids))


def conditions(filters: Filters) -> list[ColumnElement[bool]]:
    """The WHERE terms of `filters` over audit_events."""
    terms: list[ColumnElement[bool]] = []
    if filters.since is not None:
        terms.append(_c.ts >= filters.since)
    if filters.until is not None:
        terms.append(_c.ts < filters.until)
    if filters.queue_id is not None:
        terms.append(or_(_c.queue_id == filters.queue_id, _c.about == filters.queue_id))
    if filters.message_id is not None:
        accepted = (
            select(_c.queue_id)
            .where(_c.message_id == filters.message_id, _c.queue_id.is_not(None))
            .scalar_subquery()
        )
        terms.append(_about_message(accepted))
    for column, value in (
        (_c.principal, filters.principal),
        (_c.sender, filters.sender),
        (_c.rule, filters.rule),
        (_c.policy_version, filters.policy_version),
        (_c.mode, filters.mode),
        (_c.tls, filters.tls),
        (_c.result, filters.result),
        (_c.actor, filters.actor),
    ):
        if value is not None:
            terms.append(column == value)
    if filters.events:
        terms.append(_c.event.in_(filters.events))
    if filters.recipient is not None:
        named = select(_r.event_id).where(_r.recipient == filters.recipient.lower())
        terms.append(_c.id.in_(named))
    if filters.recipient_domain is not None:
        domain = domain_of("@" + filters.recipient_domain.lstrip("@"))
        terms.append(_c.id.in_(select(_r.event_id).where(_r.domain == domain)))
    return terms


@dataclass(frozen=True)
class Event:
    """One stored event as a reviewer reads it (metadata only, like every event)."""

    id: int
    ts: float
    event: str
    result: str
    queue_id: str | None
    principal: str | None
    actor: str | None
    client_ip: str | None
    sender: str | None
    recipients: tuple[str, ...]
    size: int | None
    code: int | None
    detail: str | None
    hash: str  # its link in the chain: what a copy elsewhere is checked against

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "time": datetime.fromtimestamp(self.ts, UTC).isoformat(timespec="seconds"),
            "event": self.event,
            "result": self.result,
            "queue_id": self.queue_id,
            "principal": self.principal,
            "actor": self.actor,
            "client_ip": self.client_ip,
            "sender": self.sender,
            "recipients": list(self.recipients),
            "size": self.size,
            "code": self.code,
            "detail": self.detail,
            "hash": self.hash,
        }


_EVENT_COLUMNS = (
    _c.id, _c.ts, _c.event, _c.result, _c.queue_id, _c.principal, _c.actor, _c.client_ip,
    _c.sender, _c.recipients, _c.size, _c.code, _c.detail, _c.hash,
)  # fmt: skip


def _event(row: Row[Any, *tuple[Any, ...]]) -> Event:
    return Event(
        id=row.id,
        ts=row.ts,
        event=row.event,
        result=row.result,
        queue_id=row.queue_id,
        principal=row.principal,
        actor=row.actor,
        client_ip=row.client_ip,
        sender=row.sender,
        recipients=tuple(listed_recipients(row.recipients)),
        size=row.size,
        code=row.code,
        detail=row.detail,
        hash=row.hash,
    )


@dataclass(frozen=True)
class Page:
    events: list[Event]
    next_after: int | None  # pass as `after` for the next page; None: this was the last


def search(conn: Connection, filters: Filters, limit: int = 100, after: int = 0) -> Page:
    """The first `limit` events matching `filters` with id > `after`, oldest first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise FilterError(f"limit must be 1 to {MAX_LIMIT}, not {limit}")
    terms = conditions(filters)
    # No id bound on the first page: with one, SQLite (which cannot size a
    # bound range) would walk the table from the start instead of using the
    # filters' indexes. A later page starts right after the previous one.
    if after:
        terms.append(_c.id > after)
    query = select(*_EVENT_COLUMNS).where(*terms).order_by(_c.id).limit(limit + 1)
    rows = conn.execute(query).all()
    events = [_event(row) for row in rows[:limit]]
    return Page(events, events[-1].id if len(rows) > limit else None)


@dataclass(frozen=True)
class Summary:
    total: int
    by_event: dict[str, int]  # event kind -> count, most frequent first

    def as_json(self) -> dict[str, Any]:
        return {"total": self.total, "by_event": self.by_event}


def summary(conn: Connection, filters: Filters) -> Summary:
    """How many events match `filters`, in all and by kind."""
    count = func.count().label("n")
    query = select(_c.event, count).where(and_(True, *conditions(filters))).group_by(_c.event)
    counts = sorted(((str(r.event), int(r.n)) for r in conn.execute(query)), key=_by_count)
    return Summary(sum(n for _, n in counts), dict(counts))


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def of_message(conn: Connection, queue_id: str) -> list[Event]:
    """Every event about one message, oldest first: those recorded under its queue
    id, and the DSNs and portal mail about it (recorded under their own ids)."""
    query = select(*_EVENT_COLUMNS).where(*conditions(Filters(queue_id=queue_id))).order_by(_c.id)
    return [_event(row) for row in conn.execute(query)]


def newest_id(conn: Connection) -> int:
    """The id of the newest event (0: none): later ones were appended after this call."""
    return int(conn.execute(select(func.coalesce(func.max(_c.id), 0))).scalar_one())


def every(
    reading: Callable[[], AbstractContextManager[Connection]],
    filters: Filters,
    after: int,
    upto: int,
    page: int = 1000,
) -> Iterator[Event]:
    """Every event matching `filters` with `after` < id <= `upto`, oldest first,
    read a page at a time (each page a short read of its own)."""
    while after < upto:
        with reading() as conn:
            found = search(conn, filters, page, after)
        for event in found.events:
            if event.id > upto:
                return
            yield event
        if found.next_after is None:
            return
        after = found.next_after
