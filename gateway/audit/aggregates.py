"""What a compliance report reads from the audit trail: SQL aggregates over a time range.

Each function runs one query and returns plain rows; the report is built from
them without I/O (gateway.reports.build). The queries read the event columns,
the derived search keys (gateway.store.audit_facets) and `audit_recipients`,
so they use the trail's indexes. Like the trail, the rows are metadata only;
they carry recipient domains, never a recipient's address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Integer, cast, distinct, func, select

from gateway.audit import search
from gateway.store.audit_facets import DELIVERY_EVENTS
from gateway.store.schema import audit_events, audit_recipients

DAY = 86400
_c = audit_events.c
_r = audit_recipients.c
_PHI = _c.detail.like("% phi=yes%")
# Modes that never open a session to a next hop: nothing to say about TLS.
NO_HOP_MODES = ("portal", "consent")
AUTH_FAILURES = ("failed", "locked")


@dataclass(frozen=True)
class Span:
    """A report's time range: since <= ts < until (UNIX seconds)."""

    since: float
    until: float

    def terms(self) -> list[ColumnElement[bool]]:
        return [_c.ts >= self.since, _c.ts < self.until]


def span_of(since: str, until: str) -> Span:
    """The span from `since` to `until` as a person writes them (a date, whole days
    included, or an ISO time; see search.parse_when); FilterError says what is wrong."""
    span = Span(search.parse_when(since), search.parse_when(until, end=True))
    if span.until <= span.since:
        raise search.FilterError(f"the end {until} is before the start {since}: swap them")
    return span


def _day(conn: Connection) -> ColumnElement[int]:
    """The UTC day number of an event (days since 1970-01-01)."""
    if conn.dialect.name == "postgresql":
        return cast(func.floor(_c.ts / DAY), Integer)
    return cast(_c.ts / DAY, Integer)  # SQLite truncates, and ts is never negative


@dataclass(frozen=True)
class DecisionGroup:
    """Policy decisions (one per recipient) alike in principal, action and detail.

    The detail of a decision holds no per-message identifier, so grouping by
    it keeps every word a report reads (category, rule, consent, phi) while a
    month of decisions comes back as a few thousand rows."""

    principal: str | None
    action: str
    detail: str
    decisions: int
    first_ts: float


def decision_groups(conn: Connection, span: Span) -> list[DecisionGroup]:
    n = func.count().label("n")
    first = func.min(_c.ts).label("first")
    query = (
        select(_c.principal, _c.result, _c.detail, n, first)
        .where(_c.event == "policy", *span.terms())
        .group_by(_c.principal, _c.result, _c.detail)
    )
    return [
        DecisionGroup(r.principal, r.result, r.detail or "", int(r.n), float(r.first))
        for r in conn.execute(query)
    ]


@dataclass(frozen=True)
class DailyCount:
    principal: str | None
    day: int  # UTC day number
    messages: int


def accepted_per_day(conn: Connection, span: Span) -> list[DailyCount]:
    """Messages accepted per principal and UTC day."""
    day = _day(conn).label("day")
    n = func.count().label("n")
    query = (
        select(_c.principal, day, n)
        .where(_c.event == "accepted", *span.terms())
        .group_by(_c.principal, day)
    )
    return [DailyCount(r.principal, int(r.day), int(r.n)) for r in conn.execute(query)]


@dataclass(frozen=True)
class AttemptGroup:
    """Delivery events alike in kind, mode, TLS verification, status and code."""

    event: str  # delivered, deferred, bounced
    mode: str | None  # None: not yet indexed
    tls: str | None
    status: str  # enhanced status code
    code: int | None
    phi: bool  # the message carried PHI
    count: int


def attempts(conn: Connection, span: Span) -> list[AttemptGroup]:
    """Delivery events in the span, and whether their message carried PHI (its
    decisions say so; a message recorded before the span is looked up too)."""
    decision = audit_events.alias("decision")
    had_phi = (
        select(decision.c.id)
        .where(
            decision.c.queue_id == _c.queue_id,
            decision.c.event == "policy",
            decision.c.detail.like("% phi=yes%"),
        )
        .exists()
        .label("phi")
    )
    n = func.count().label("n")
    inner = (
        select(_c.event, _c.mode, _c.tls, _c.result, _c.code, had_phi)
        .where(_c.event.in_(sorted(DELIVERY_EVENTS)), *span.terms())
        .subquery()
    )
    cols = inner.c
    query = select(cols.event, cols.mode, cols.tls, cols.result, cols.code, cols.phi, n).group_by(
        cols.event, cols.mode, cols.tls, cols.result, cols.code, cols.phi
    )
    return [
        AttemptGroup(r.event, r.mode, r.tls, r.result, r.code, bool(r.phi), int(r.n))
        for r in conn.execute(query)
    ]


@dataclass(frozen=True)
class DomainTls:
    """Delivery attempts to one recipient domain alike in TLS verification and status."""

    domain: str
    tls: str | None
    event: str
    status: str
    count: int


def tls_by_domain(conn: Connection, span: Span) -> list[DomainTls]:
    """Attempts through a next hop (not portal or consent outcomes), per recipient domain."""
    n = func.count().label("n")
    query = (
        select(_r.domain, _c.tls, _c.event, _c.result, n)
        .select_from(audit_events.join(audit_recipients, _r.event_id == _c.id))
        .where(
            _c.event.in_(sorted(DELIVERY_EVENTS)),
            *span.terms(),
            func.coalesce(_c.mode, "").not_in(NO_HOP_MODES),
        )
        .group_by(_r.domain, _c.tls, _c.event, _c.result)
    )
    return [DomainTls(r.domain, r.tls, r.event, r.result, int(r.n)) for r in conn.execute(query)]


@dataclass(frozen=True)
class RefusalGroup:
    """Refusals at the SMTP level (before any policy), alike in stage and reply code."""

    stage: str  # connect, mail, rcpt, data, protocol, session, ...
    code: int | None
    count: int


def smtp_refusals(conn: Connection, span: Span) -> list[RefusalGroup]:
    n = func.count().label("n")
    query = (
        select(_c.result, _c.code, n)
        .where(_c.event == "refused", *span.terms())
        .group_by(_c.result, _c.code)
    )
    return [RefusalGroup(r.result, r.code, int(r.n)) for r in conn.execute(query)]


@dataclass(frozen=True)
class PhiDomain:
    """Decisions to let PHI go to one recipient domain, from one principal."""

    domain: str
    principal: str | None
    messages: int
    first_ts: float


def phi_domains(conn: Connection, span: Span) -> list[PhiDomain]:
    """Recipient domains that PHI was accepted for (delivered or held), by principal."""
    messages = func.count(distinct(_c.queue_id)).label("messages")
    first = func.min(_c.ts).label("first")
    query = (
        select(_r.domain, _c.principal, messages, first)
        .select_from(audit_events.join(audit_recipients, _r.event_id == _c.id))
        .where(_c.event == "policy", *span.terms(), _c.result != "reject", _PHI)
        .group_by(_r.domain, _c.principal)
    )
    return [
        PhiDomain(r.domain, r.principal, int(r.messages), float(r.first))
        for r in conn.execute(query)
    ]


def _first_id_at(conn: Connection, ts: float) -> int:
    """The id of the first event at or after `ts` (ids grow with time); past the end if none."""
    found = conn.execute(select(func.min(_c.id)).where(_c.ts >= ts)).scalar()
    if found is not None:
        return int(found)
    last = conn.execute(select(func.max(_c.id))).scalar()
    return int(last or 0) + 1


def first_ts(conn: Connection) -> float | None:
    """When the trail's first event was recorded; None for an empty trail."""
    found = conn.execute(select(func.min(_c.ts))).scalar()
    return None if found is None else float(found)


def domains_seen(conn: Connection, domains: Sequence[str], since: float, until: float) -> set[str]:
    """Which of `domains` any event between `since` and `until` named as a recipient.

    Read through the (domain, event_id) index with the window turned into an id
    range, so each domain costs one index probe, however long the window."""
    if not domains:
        return set()
    low, high = _first_id_at(conn, since), _first_id_at(conn, until)
    seen: set[str] = set()
    for start in range(0, len(domains), 500):
        chunk = list(domains[start : start + 500])
        query = (
            select(_r.domain)
            .distinct()
            .where(_r.domain.in_(chunk), _r.event_id >= low, _r.event_id < high)
        )
        seen.update(str(d) for d in conn.execute(query).scalars())
    return seen


@dataclass(frozen=True)
class AuthFailure:
    client_ip: str
    ts: float
    login: str  # as typed by the client: counted, never shown
    locked: bool


def auth_failures(conn: Connection, span: Span) -> list[AuthFailure]:
    """Failed and locked-out AUTH attempts, by client and time."""
    query = (
        select(_c.client_ip, _c.ts, _c.principal, _c.result)
        .where(_c.event == "auth", _c.result.in_(AUTH_FAILURES), *span.terms())
        .order_by(_c.client_ip, _c.ts)
    )
    return [
        AuthFailure(r.client_ip or "", float(r.ts), r.principal or "", r.result == "locked")
        for r in conn.execute(query)
    ]


@dataclass(frozen=True)
class AdminEvent:
    """An event that names who made a change."""

    ts: float
    event: str
    result: str
    actor: str
    detail: str | None


def listed(
    conn: Connection, span: Span, kinds: Sequence[str] = (), prefix: str | None = None
) -> list[AdminEvent]:
    """Events of these kinds, or whose kind starts with `prefix`, oldest first."""
    kind = _c.event.like(f"{prefix}%") if prefix is not None else _c.event.in_(kinds)
    query = (
        select(_c.ts, _c.event, _c.result, _c.actor, _c.detail)
        .where(kind, *span.terms())
        .order_by(_c.id)
    )
    return [
        AdminEvent(float(r.ts), r.event, r.result, r.actor or "", r.detail)
        for r in conn.execute(query)
    ]


@dataclass(frozen=True)
class ActorCount:
    event: str
    result: str
    actor: str
    count: int


def changes_by_actor(conn: Connection, span: Span, excluded_prefix: str) -> list[ActorCount]:
    """Admin changes (events naming an actor) by kind and actor, but those whose kind
    starts with `excluded_prefix` (reported on their own)."""
    n = func.count().label("n")
    query = (
        select(_c.event, _c.result, _c.actor, n)
        .where(_c.actor.is_not(None), _c.event.not_like(f"{excluded_prefix}%"), *span.terms())
        .group_by(_c.event, _c.result, _c.actor)
    )
    return [ActorCount(r.event, r.result, r.actor, int(r.n)) for r in conn.execute(query)]


def version_before(conn: Connection, since: float) -> str | None:
    """The policy version of the last decision before `since`: the one in force then."""
    return conn.execute(
        select(_c.policy_version)
        .where(_c.event == "policy", _c.ts < since, _c.policy_version.is_not(None))
        .order_by(_c.ts.desc())
        .limit(1)
    ).scalar()
