"""The mail queue: messages (sealed content) and per-recipient delivery jobs.

Functions here take a Connection and run inside the caller's transaction, so
intake can commit content, jobs and audit events together. Claiming uses
`UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING`: on
PostgreSQL the row locks keep workers apart, on SQLite the writer's BEGIN
IMMEDIATE does (SQLAlchemy omits FOR UPDATE there).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, case, false, func, insert, or_, select, update

from gateway.store.contents import ContentFiles
from gateway.store.database import shredded
from gateway.store.keyring import Keyring, Sealed
from gateway.store.prepared import Prepared
from gateway.store.principals import stored_author_domains
from gateway.store.schema import jobs, messages, principals

QUEUED, ACTIVE, HELD = "queued", "active", "held"
DELIVERED, BOUNCED, DELETED = "delivered", "bounced", "deleted"
# States in which a job still needs the message content.
PENDING_STATES = (QUEUED, ACTIVE, HELD)
# How mail without a policy decision leaves (DSNs): the configured delivery.
DEFAULT_ROUTE: tuple[str, ...] = ("standard",)


def new_queue_id(now: float | None = None) -> str:
    """Time-ordered and unguessable: 11 hex digits of milliseconds + 10 random."""
    millis = int((now if now is not None else time.time()) * 1000)
    return f"{millis:011X}{secrets.token_hex(5).upper()}"


@dataclass(frozen=True)
class NewMessage:
    queue_id: str
    received_at: float
    listener: str
    principal: str | None
    client_ip: str
    sender: str
    size: int
    message_id: str | None
    sealed: Sealed
    is_dsn: bool = False
    # The ciphertext is in its file already (store/contents.py); the row keeps the key.
    content_in_file: bool = False


@dataclass(frozen=True)
class Rewrite:
    """The changes a delivery makes to one job's message (policy text only): the
    neutral subject, added headers, and the CAN-SPAM footer's postal address."""

    subject: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    footer: str | None = None

    def to_json(self) -> str:
        """As stored in the job's `rewrite` column."""
        spec: dict[str, object] = {
            "subject": self.subject,
            "headers": [list(h) for h in self.headers],
        }
        if self.footer is not None:
            spec["footer"] = self.footer
        return json.dumps(spec)

    @classmethod
    def from_json(cls, text: str) -> Rewrite:
        spec = json.loads(text)
        headers = tuple((name, value) for name, value in spec.get("headers", []))
        return cls(spec.get("subject"), headers, spec.get("footer"))


@dataclass(frozen=True)
class PortalTerms:
    """How mode portal holds one job's copy: the policy's terms, and the argon2id
    hash of the sender's passphrase where access is by passphrase."""

    access: str = "code"  # code | passphrase
    show_sender: bool = False
    expiry_days: int | None = None  # None: the settings' portal.expiry_days
    read_receipt: bool = False
    passphrase_hash: str | None = None

    def to_json(self) -> str:
        """As stored in the job's `portal` column."""
        return json.dumps(
            {
                "access": self.access,
                "show_sender": self.show_sender,
                "expiry_days": self.expiry_days,
                "read_receipt": self.read_receipt,
                "passphrase_hash": self.passphrase_hash,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> PortalTerms:
        spec = json.loads(text)
        return cls(
            spec["access"],
            spec["show_sender"],
            spec["expiry_days"],
            spec["read_receipt"],
            spec["passphrase_hash"],
        )


def _via_column(via: tuple[str, ...]) -> str:
    """The `route` column: the delivery modes in order, comma-separated."""
    return ",".join(via)


def _via_of(route: str) -> tuple[str, ...]:
    return tuple(route.split(","))


@dataclass(frozen=True)
class NewJob:
    recipient: str
    via: tuple[str, ...]  # delivery modes in order, e.g. ("tls", "portal")
    held: bool = False
    rule: str | None = None
    policy: str | None = None
    rewrite: Rewrite | None = None
    purpose: str | None = None  # marketing purpose whose consent delivery re-checks
    portal: PortalTerms | None = None  # set when via names portal


def insert_own_mail(
    conn: Connection,
    keyring: Keyring,
    *,
    to: Sequence[str],
    content: bytes,
    listener: str,
    now: float,
    is_dsn: bool = False,
) -> str:
    """Seal and queue mail phigate writes itself (portal notices, reports) for `to`,
    from the null sender (no bounce loops), through the configured delivery; its
    queue id. `listener` names what wrote it (messages.listener); `is_dsn` marks
    mail that, like a DSN, is signed as the postmaster's domain and never bounced."""
    queue_id = new_queue_id(now)
    record = NewMessage(
        queue_id=queue_id,
        received_at=now,
        listener=listener,
        principal=None,
        client_ip="",
        sender="",
        size=len(content),
        message_id=None,
        sealed=keyring.seal(content, queue_id.encode()),
        is_dsn=is_dsn,
    )
    insert_message(conn, record, [NewJob(address, DEFAULT_ROUTE) for address in to])
    return queue_id


# The statements on the path of every message are built once, with bind
# parameters: building a Core statement per call costs far more than
# running it (about 0.7 ms against 0.05 ms for a job update); and most are
# run on the driver's cursor (gateway.store.prepared).
_MESSAGE_COLUMNS = (
    "queue_id",
    "received_at",
    "listener",
    "principal",
    "client_ip",
    "sender",
    "size",
    "message_id",
    "is_dsn",
    "key_id",
    "wrapped_key",
    "content",
)
_JOB_COLUMNS = (
    "queue_id",
    "recipient",
    "state",
    "route",
    "rule",
    "policy",
    "rewrite",
    "purpose",
    "portal",
    "attempts",
    "next_attempt_at",
    "updated_at",
    "lease_owner",
    "lease_until",
)
_INSERT_MESSAGE = Prepared(insert(messages), _MESSAGE_COLUMNS)
_INSERT_JOB = Prepared(insert(jobs), _JOB_COLUMNS)

# A job inserted leased (see insert_message): its id is all that is not at hand.
_INSERT_LEASED_JOB = Prepared(insert(jobs).returning(jobs.c.id), _JOB_COLUMNS)
_PRINCIPAL_DOMAINS = Prepared(
    select(principals.c.domains, principals.c.from_domains).where(
        principals.c.name == bindparam("name")
    )
)
_DUE = (
    select(jobs.c.id)
    .where(
        ((jobs.c.state == QUEUED) & (jobs.c.next_attempt_at <= bindparam("now")))
        | ((jobs.c.state == ACTIVE) & (jobs.c.lease_until < bindparam("now")))
    )
    .order_by(jobs.c.next_attempt_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
# What a delivery needs of a job it holds (ClaimedJob), in _claimed_job's order.
_CLAIMED_COLUMNS = (
    jobs.c.id,
    jobs.c.queue_id,
    jobs.c.recipient,
    jobs.c.route,
    jobs.c.attempts,
    jobs.c.rewrite,
    jobs.c.purpose,
    jobs.c.portal,
)
_CLAIM = Prepared(
    update(jobs)
    .where(jobs.c.id.in_(_DUE.scalar_subquery()))
    .values(
        state=ACTIVE,
        lease_owner=bindparam("owner"),
        lease_until=bindparam("until"),
        updated_at=bindparam("now"),
    )
    .returning(*_CLAIMED_COLUMNS)
)
_HANDED_JOBS = Prepared(
    select(*_CLAIMED_COLUMNS).where(
        jobs.c.queue_id == bindparam("queue_id"),
        jobs.c.lease_owner == bindparam("owner"),
        jobs.c.state == ACTIVE,
    )
)
# With the sending principal's domains as they are now: DKIM signs only those.
_LOAD_MESSAGES = (
    select(
        *(column for column in messages.c if column is not messages.c.content),
        # A large message's content stays in the store until its delivery's turn; one
        # in its own file (store/contents.py) is large whatever the size now set.
        case((messages.c.size <= bindparam("inline_size"), messages.c.content)).label("content"),
        (
            (messages.c.size > bindparam("inline_size"))
            | (messages.c.content.is_(None) & messages.c.wrapped_key.is_not(None))
        ).label("large"),
        principals.c.domains.label("principal_domains"),
        principals.c.from_domains.label("principal_from_domains"),
    )
    .select_from(messages.outerjoin(principals, principals.c.name == messages.c.principal))
    .where(messages.c.queue_id.in_(bindparam("queue_ids", expanding=True)))
)
_LOAD_SEALED = select(messages.c.key_id, messages.c.wrapped_key, messages.c.content).where(
    messages.c.queue_id == bindparam("queue_id")
)
_FINISH_JOB = Prepared(
    update(jobs)
    .where(
        jobs.c.id == bindparam("job_id"),
        jobs.c.lease_owner == bindparam("owner"),
        jobs.c.state == ACTIVE,
    )
    .values(
        state=bindparam("new_state"),
        attempts=bindparam("attempts_done"),
        last_code=bindparam("code"),
        last_status=bindparam("status"),
        last_reply=bindparam("reply"),
        remote_host=bindparam("remote"),
        lease_owner=None,
        lease_until=None,
        next_attempt_at=bindparam("next_at"),
        updated_at=bindparam("now"),
    )
)
_SHRED_IF_DONE = Prepared(
    update(messages)
    .where(
        messages.c.queue_id == bindparam("message"),
        ~select(jobs.c.id)
        # Not IN (...): its list is expanded per execution, which a Prepared is not.
        .where(
            jobs.c.queue_id == bindparam("message"),
            or_(*(jobs.c.state == state for state in PENDING_STATES)),
        )
        .exists(),
    )
    .values(wrapped_key=None, content=None)
)


@dataclass(frozen=True)
class Lease:
    """A delivery worker free to take new mail at once (of this process or of an
    idle sibling): jobs inserted under it are leased to `owner` until `until`, as
    a claim would lease them, so they need no claim (see insert_message)."""

    owner: str
    until: float


def insert_message(
    conn: Connection, message: NewMessage, new_jobs: Sequence[NewJob], lease: Lease | None = None
) -> Leased | None:
    """Queue a message and its jobs. With a `lease`, the jobs to deliver (not the
    held ones) are inserted already leased to its owner, and what a claim would
    load for them is returned: the message (with its content) and those jobs."""
    _INSERT_MESSAGE.run(
        conn,
        {
            "queue_id": message.queue_id,
            "received_at": message.received_at,
            "listener": message.listener,
            "principal": message.principal,
            "client_ip": message.client_ip,
            "sender": message.sender,
            "size": message.size,
            "message_id": message.message_id,
            "is_dsn": message.is_dsn,
            "key_id": message.sealed.key_id,
            "wrapped_key": message.sealed.wrapped_key,
            "content": None if message.content_in_file else message.sealed.ciphertext,
        },
    )
    rows = [
        {
            "queue_id": message.queue_id,
            "recipient": job.recipient,
            "state": HELD if job.held else QUEUED if lease is None else ACTIVE,
            "route": _via_column(job.via),
            "rule": job.rule,
            "policy": job.policy,
            "rewrite": job.rewrite.to_json() if job.rewrite is not None else None,
            "purpose": job.purpose,
            "portal": job.portal.to_json() if job.portal is not None else None,
            "attempts": 0,
            "next_attempt_at": message.received_at,
            "updated_at": message.received_at,
            "lease_owner": None if lease is None or job.held else lease.owner,
            "lease_until": None if lease is None or job.held else lease.until,
        }
        for job in new_jobs
    ]
    if lease is None:
        if rows:
            _INSERT_JOB.run_many(conn, rows)
        return None
    leased = []
    for job, row in zip(new_jobs, rows, strict=True):
        ((job_id,),) = _INSERT_LEASED_JOB.run(conn, row).fetchall()
        if not job.held:
            leased.append(
                ClaimedJob(
                    job_id,
                    message.queue_id,
                    job.recipient,
                    job.via,
                    0,
                    job.rewrite,
                    job.purpose,
                    job.portal,
                )
            )
    return Leased(_delivered_now(conn, message), tuple(leased))


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    queue_id: str
    recipient: str
    via: tuple[str, ...]
    attempts: int
    rewrite: Rewrite | None = None
    purpose: str | None = None
    portal: PortalTerms | None = None


def claim(conn: Connection, owner: str, now: float, lease: float, limit: int) -> list[ClaimedJob]:
    """Lease up to `limit` due jobs (or jobs whose lease expired) to `owner`."""
    params = {"now": now, "limit": limit, "owner": owner, "until": now + lease}
    return [_claimed_job(row) for row in _CLAIM.run(conn, params).fetchall()]


def handed_over(conn: Connection, owner: str, queue_ids: Sequence[str]) -> list[ClaimedJob]:
    """The jobs of messages another process stored leased to `owner` (insert_message
    with a Lease of `owner`) and handed over by name: what a claim would return."""
    return [
        _claimed_job(row)
        for queue_id in queue_ids
        for row in _HANDED_JOBS.run(conn, {"queue_id": queue_id, "owner": owner}).fetchall()
    ]


def _claimed_job(row: Sequence[Any]) -> ClaimedJob:
    job_id, queue_id, recipient, route, attempts, rewrite, purpose, portal = row
    return ClaimedJob(
        job_id,
        queue_id,
        recipient,
        _via_of(route),
        attempts,
        Rewrite.from_json(rewrite) if rewrite is not None else None,
        purpose,
        PortalTerms.from_json(portal) if portal is not None else None,
    )


@dataclass(frozen=True)
class MessageForDelivery:
    queue_id: str
    sender: str
    received_at: float
    message_id: str | None
    principal: str | None
    is_dsn: bool
    sealed: Sealed | None  # None once shredded, or left in the store when `large`
    listener: str = ""  # where it came in; phigate's own reports name their source
    client_ip: str = ""
    # What the principal's From: may name now (principals.author_domains); () without one.
    principal_domains: tuple[str, ...] = ()
    large: bool = False  # content not loaded with the claim (see load_messages)


@dataclass(frozen=True)
class Leased:
    """A message queued with its jobs leased (insert_message): what a claim loads."""

    message: MessageForDelivery
    jobs: tuple[ClaimedJob, ...]


def _delivered_now(conn: Connection, message: NewMessage) -> MessageForDelivery:
    """`message` as load_messages finds it, without reading back what is at hand."""
    principal_domains: tuple[str, ...] = ()
    if message.principal is not None:
        row = _PRINCIPAL_DOMAINS.run(conn, {"name": message.principal}).fetchone()
        if row is not None:
            principal_domains = stored_author_domains(row[0], row[1])
    return MessageForDelivery(
        message.queue_id,
        message.sender,
        message.received_at,
        message.message_id,
        message.principal,
        message.is_dsn,
        None if message.content_in_file else message.sealed,
        message.listener,
        message.client_ip,
        principal_domains,
        large=message.content_in_file,  # read from its file at the worker's turn
    )


def _sealed_of(row: Any) -> Sealed | None:
    if row["wrapped_key"] is None or row["content"] is None:
        return None  # shredded
    return Sealed(row["key_id"], row["wrapped_key"], row["content"])


def load_messages(
    conn: Connection, queue_ids: Sequence[str], inline_size: int
) -> dict[str, MessageForDelivery]:
    """The messages that claimed jobs belong to, with their sealed content if it is no
    larger than `inline_size` octets; the others are `large`, for `load_sealed`."""
    found: dict[str, MessageForDelivery] = {}
    params = {"queue_ids": list(queue_ids), "inline_size": inline_size}
    for row in conn.execute(_LOAD_MESSAGES, params).mappings():
        found[row["queue_id"]] = MessageForDelivery(
            row["queue_id"],
            row["sender"],
            row["received_at"],
            row["message_id"],
            row["principal"],
            row["is_dsn"],
            None if row["large"] else _sealed_of(row),
            row["listener"],
            row["client_ip"],
            stored_author_domains(row["principal_domains"], row["principal_from_domains"])
            if row["principal_domains"] is not None
            else (),
            large=bool(row["large"]),
        )
    return found


def load_sealed(conn: Connection, queue_id: str, contents: ContentFiles | None) -> Sealed | None:
    """One message's sealed content, from its row or its file; None once it is shredded
    or deleted. Raises ContentMissing for a content whose key is kept but whose file is
    gone (delivery then defers, as for any failure to open a message)."""
    row = conn.execute(_LOAD_SEALED, {"queue_id": queue_id}).mappings().first()
    if row is None:
        return None
    if row["content"] is None and row["wrapped_key"] is not None and contents is not None:
        return Sealed(row["key_id"], row["wrapped_key"], contents.read(queue_id))
    return _sealed_of(row)


def finish_job(
    conn: Connection,
    job_id: int,
    owner: str,
    *,
    state: str,
    now: float,
    attempts_done: int,
    code: int | None,
    status: str | None,
    reply: str | None,
    remote_host: str | None,
    next_attempt_at: float | None = None,
) -> bool:
    """Record an attempt's outcome for a job this owner still holds; False if it does not.

    Only a row still leased by `owner` changes: if the lease expired and
    another worker took the job, this worker's late result is dropped.
    """
    cursor = _FINISH_JOB.run(
        conn,
        {
            "job_id": job_id,
            "owner": owner,
            "new_state": state,
            "attempts_done": attempts_done,
            "code": code,
            "status": status,
            "reply": reply[:255] if reply else reply,
            "remote": remote_host,
            "next_at": next_attempt_at if next_attempt_at is not None else now,
            "now": now,
        },
    )
    return cursor.rowcount == 1


def release_leases(conn: Connection, owner: str, now: float, queue_id: str | None = None) -> int:
    """Hand back jobs a stopping worker still holds (with `queue_id`, only that
    message's), due at once."""
    held = [jobs.c.lease_owner == owner, jobs.c.state == ACTIVE]
    if queue_id is not None:
        held.append(jobs.c.queue_id == queue_id)
    result = conn.execute(
        update(jobs)
        .where(*held)
        .values(
            state=QUEUED, lease_owner=None, lease_until=None, next_attempt_at=now, updated_at=now
        )
    )
    return result.rowcount


def renew_leases(conn: Connection, *, owner: str, until: float, job_ids: Sequence[int]) -> int:
    """Extend the leases of the jobs a live worker is still working on, so that a
    dead worker's expire, and so do jobs this worker dropped without a result."""
    if not job_ids:
        return 0
    result = conn.execute(
        update(jobs)
        .where(jobs.c.lease_owner == owner, jobs.c.state == ACTIVE, jobs.c.id.in_(job_ids))
        .values(lease_until=until)
    )
    return result.rowcount


def drop_finished_content(conn: Connection, queue_id: str) -> None:
    """Shred a message's content once no job needs it any more."""
    if _SHRED_IF_DONE.run(conn, {"message": queue_id}).rowcount:
        shredded(conn)


# --- admin queries (metadata only) ----------------------------------------


@dataclass(frozen=True)
class Depth:
    """The queue at a glance: pending jobs by state, and when its oldest message arrived."""

    jobs: dict[str, int]
    oldest_received_at: float | None  # None: nothing pending


def depth(conn: Connection) -> Depth:
    """Pending jobs by state (the state index), and the oldest of their messages."""
    rows = conn.execute(
        select(jobs.c.state, func.count(), func.min(messages.c.received_at))
        .join(messages, messages.c.queue_id == jobs.c.queue_id)
        .where(jobs.c.state.in_(PENDING_STATES))
        .group_by(jobs.c.state)
    ).all()
    counts = dict.fromkeys(PENDING_STATES, 0) | {state: count for state, count, _ in rows}
    oldest = min((first for _, _, first in rows if first is not None), default=None)
    return Depth(counts, oldest)


def probe(conn: Connection) -> None:
    """A write that changes nothing but fails where any write would (locked, read-only)."""
    conn.execute(update(jobs).where(false()).values(state=jobs.c.state))


def list_jobs(conn: Connection, states: Sequence[str], limit: int) -> list[dict[str, object]]:
    query = (
        select(
            jobs.c.queue_id,
            jobs.c.id,
            jobs.c.recipient,
            jobs.c.state,
            jobs.c.attempts,
            jobs.c.next_attempt_at,
            jobs.c.last_code,
            jobs.c.last_status,
            messages.c.sender,
            messages.c.size,
            messages.c.received_at,
            messages.c.principal,
        )
        .join(messages, messages.c.queue_id == jobs.c.queue_id)
        .where(jobs.c.state.in_(states))
        .order_by(messages.c.received_at, jobs.c.id)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def show_message(conn: Connection, queue_id: str) -> dict[str, object] | None:
    row = (
        conn.execute(
            select(
                messages.c.queue_id,
                messages.c.received_at,
                messages.c.listener,
                messages.c.principal,
                messages.c.client_ip,
                messages.c.sender,
                messages.c.size,
                messages.c.message_id,
                messages.c.is_dsn,
                (messages.c.wrapped_key.is_not(None)).label("content_stored"),
            ).where(messages.c.queue_id == queue_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    info = dict(row)
    info["content_stored"] = bool(info["content_stored"])
    info["recipients"] = [
        dict(r)
        for r in conn.execute(
            select(
                jobs.c.id,
                jobs.c.recipient,
                jobs.c.state,
                jobs.c.route,
                jobs.c.rule,
                jobs.c.policy,
                jobs.c.attempts,
                jobs.c.next_attempt_at,
                jobs.c.last_code,
                jobs.c.last_status,
                jobs.c.last_reply,
                jobs.c.remote_host,
            )
            .where(jobs.c.queue_id == queue_id)
            .order_by(jobs.c.id)
        ).mappings()
    ]
    return info


def retry_now(conn: Connection, queue_id: str | None, now: float) -> int:
    """Make queued jobs (of one message, or all) due immediately."""
    query = update(jobs).where(jobs.c.state == QUEUED)
    if queue_id is not None:
        query = query.where(jobs.c.queue_id == queue_id)
    return conn.execute(query.values(next_attempt_at=now, updated_at=now)).rowcount


def release_held(conn: Connection, queue_id: str, now: float) -> list[str]:
    """Queue a message's held jobs for delivery now; returns the released recipients."""
    released = list(
        conn.execute(
            select(jobs.c.recipient).where(jobs.c.queue_id == queue_id, jobs.c.state == HELD)
        ).scalars()
    )
    conn.execute(
        update(jobs)
        .where(jobs.c.queue_id == queue_id, jobs.c.state == HELD)
        .values(state=QUEUED, next_attempt_at=now, updated_at=now)
    )
    return released


def delete_message(conn: Connection, queue_id: str, now: float) -> list[str]:
    """Cancel a message's pending jobs and shred its content; returns the cancelled recipients."""
    recipients = list(
        conn.execute(
            select(jobs.c.recipient).where(
                jobs.c.queue_id == queue_id, jobs.c.state.in_(PENDING_STATES)
            )
        ).scalars()
    )
    conn.execute(
        update(jobs)
        .where(jobs.c.queue_id == queue_id, jobs.c.state.in_(PENDING_STATES))
        .values(state=DELETED, lease_owner=None, lease_until=None, updated_at=now)
    )
    conn.execute(
        update(messages)
        .where(messages.c.queue_id == queue_id)
        .values(wrapped_key=None, content=None)
    )
    shredded(conn)
    return recipients


def message_exists(conn: Connection, queue_id: str) -> bool:
    return (
        conn.execute(select(messages.c.queue_id).where(messages.c.queue_id == queue_id)).first()
        is not None
    )
