"""Reading the audit trail back: the events about one message, for an admin's eyes."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection, select

from gateway.store.schema import audit_events


@dataclass(frozen=True)
class Recorded:
    """One stored event, as an admin reads it (metadata only, like every event)."""

    ts: float
    event: str
    result: str
    recipients: tuple[str, ...]
    client_ip: str | None
    detail: str | None


def of_message(conn: Connection, queue_id: str, event_prefix: str = "") -> list[Recorded]:
    """The events recorded under `queue_id` whose name starts with `event_prefix`, oldest first."""
    c = audit_events.c
    query = select(c.ts, c.event, c.result, c.recipients, c.client_ip, c.detail).where(
        c.queue_id == queue_id
    )
    if event_prefix:
        query = query.where(c.event.startswith(event_prefix, autoescape=True))
    rows = conn.execute(query.order_by(c.id)).all()
    return [
        Recorded(
            ts=row.ts,
            event=row.event,
            result=row.result,
            recipients=tuple(json.loads(row.recipients or "[]")),
            client_ip=row.client_ip,
            detail=row.detail,
        )
        for row in rows
    ]
