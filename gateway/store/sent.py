"""What became of a message a sender stored, per recipient: metadata only.

Read from the queue's jobs (one per accepted recipient) and, for the
recipients the policy refused at intake, from the trail's policy events; a
message is shown only to the principal that sent it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection, select

from gateway.store.queue import ACTIVE, BOUNCED, DELETED, DELIVERED, HELD, QUEUED
from gateway.store.schema import audit_events, jobs, messages

# A job's state as a sender reads it; a queued job tried before is deferred.
STATUS_OF_STATE = {
    QUEUED: "queued",
    ACTIVE: "sending",
    HELD: "held",
    DELIVERED: "delivered",
    BOUNCED: "bounced",
    DELETED: "cancelled",
}
REFUSED = "refused"


@dataclass(frozen=True)
class RecipientStatus:
    recipient: str
    status: str  # queued, deferred, sending, held, delivered, bounced, cancelled, refused
    attempts: int
    last_code: int | None  # the receiving server's last reply code
    last_status: str | None  # its enhanced status code, e.g. 4.2.2
    updated_at: float


@dataclass(frozen=True)
class SentStatus:
    queue_id: str
    received_at: float
    recipients: tuple[RecipientStatus, ...]


def status_of(conn: Connection, queue_id: str, principal: str) -> SentStatus | None:
    """The message's status per recipient, or None if `principal` did not send it."""
    received_at = conn.execute(
        select(messages.c.received_at).where(
            messages.c.queue_id == queue_id, messages.c.principal == principal
        )
    ).scalar()
    if received_at is None:
        return None
    rows = conn.execute(
        select(
            jobs.c.recipient,
            jobs.c.state,
            jobs.c.attempts,
            jobs.c.last_code,
            jobs.c.last_status,
            jobs.c.updated_at,
        )
        .where(jobs.c.queue_id == queue_id)
        .order_by(jobs.c.id)
    )
    found = [
        RecipientStatus(
            r.recipient,
            "deferred"
            if r.state == QUEUED and r.attempts
            else STATUS_OF_STATE.get(r.state, r.state),
            r.attempts,
            r.last_code,
            r.last_status,
            r.updated_at,
        )
        for r in rows
    ]
    refusals = conn.execute(
        select(audit_events.c.recipients, audit_events.c.ts).where(
            audit_events.c.queue_id == queue_id,
            audit_events.c.event == "policy",
            audit_events.c.result == "reject",
        )
    )
    for recipients, ts in refusals:
        found += [RecipientStatus(r, REFUSED, 0, None, None, ts) for r in json.loads(recipients)]
    return SentStatus(queue_id, received_at, tuple(found))
