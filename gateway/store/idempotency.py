"""The send API's idempotency keys: which message a token's key stored, and for what request.

A row is written in the transaction that stores the message (so a key never
names a message that was not stored, nor a stored message lack its key), and
read before a request is sent again. The request is kept only as a keyed
hash (its key the token's secret, which the store does not hold), never as
content.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from gateway.store.schema import api_idempotency


@dataclass(frozen=True)
class Stored:
    request_hash: str
    queue_id: str


def find(conn: Connection, token: str, key: str, since: float) -> Stored | None:
    """What token's `key` stored since `since` (older keys have expired), or None."""
    row = conn.execute(
        select(api_idempotency.c.request_hash, api_idempotency.c.queue_id).where(
            api_idempotency.c.token == token,
            api_idempotency.c.key == key,
            api_idempotency.c.created_at >= since,
        )
    ).first()
    return None if row is None else Stored(row.request_hash, row.queue_id)


def record(
    conn: Connection,
    token: str,
    key: str,
    request_hash: str,
    queue_id: str,
    now: float,
    since: float,
) -> None:
    """Keep token's `key` for the message `queue_id`, replacing an expired use of it
    (one from before `since`); a live one makes the insert fail (IntegrityError)."""
    conn.execute(
        delete(api_idempotency).where(
            api_idempotency.c.token == token,
            api_idempotency.c.key == key,
            api_idempotency.c.created_at < since,
        )
    )
    conn.execute(
        insert(api_idempotency).values(
            token=token, key=key, request_hash=request_hash, queue_id=queue_id, created_at=now
        )
    )


def prune(conn: Connection, since: float) -> int:
    """Remove every key used before `since`; how many were removed."""
    result = conn.execute(delete(api_idempotency).where(api_idempotency.c.created_at < since))
    return result.rowcount
