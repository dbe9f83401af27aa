"""Sandbox delivery: outgoing mail captured in the store (encrypted) instead of sent."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Connection, insert, select

from gateway.store.keyring import Sealed
from gateway.store.schema import sandbox_mail


def capture(
    conn: Connection,
    queue_id: str,
    sender: str,
    recipients: Sequence[str],
    size: int,
    sealed: Sealed,
    now: float,
) -> int:
    result = conn.execute(
        insert(sandbox_mail).values(
            queue_id=queue_id,
            sender=sender,
            recipients=json.dumps(list(recipients)),
            captured_at=now,
            size=size,
            key_id=sealed.key_id,
            wrapped_key=sealed.wrapped_key,
            content=sealed.ciphertext,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def list_captured(conn: Connection, limit: int) -> list[dict[str, object]]:
    query = (
        select(
            sandbox_mail.c.id,
            sandbox_mail.c.queue_id,
            sandbox_mail.c.sender,
            sandbox_mail.c.recipients,
            sandbox_mail.c.captured_at,
            sandbox_mail.c.size,
        )
        .order_by(sandbox_mail.c.id.desc())
        .limit(limit)
    )
    rows = []
    for row in conn.execute(query).mappings():
        item = dict(row)
        item["recipients"] = json.loads(str(item["recipients"]))
        rows.append(item)
    return rows


def get_sealed(conn: Connection, capture_id: int) -> tuple[str, Sealed] | None:
    """(context for opening, sealed content) of one captured message."""
    row = (
        conn.execute(select(sandbox_mail).where(sandbox_mail.c.id == capture_id)).mappings().first()
    )
    if row is None:
        return None
    return sandbox_context(row["queue_id"]), Sealed(
        row["key_id"], row["wrapped_key"], row["content"]
    )


def sandbox_context(queue_id: str) -> str:
    """Associated data binding a capture's ciphertext to its queue id."""
    return f"sandbox:{queue_id}"
