"""What the portal records about access to a copy: its code, wrong answers, sessions.

The decisions are made in gateway.portal.access; these functions only write
them, in the caller's transaction. Only keyed hashes of codes and SHA-256
hashes of session secrets are stored.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update

from gateway.store.portal import OPEN_STATES
from gateway.store.schema import portal_messages, portal_sessions


def set_code(
    conn: Connection,
    copy_id: int,
    *,
    code_hash: str,
    expires_at: float,
    codes_sent: int,
    window_start: float,
) -> bool:
    """Replace the copy's code (the previous one stops working); False if it is closed."""
    return bool(
        conn.execute(
            update(portal_messages)
            .where(portal_messages.c.id == copy_id, portal_messages.c.state.in_(OPEN_STATES))
            .values(
                code_hash=code_hash,
                code_expires_at=expires_at,
                codes_sent=codes_sent,
                codes_window_start=window_start,
            )
        ).rowcount
    )


def count_failure(conn: Connection, copy_id: int) -> int:
    """Count one more wrong answer; returns the wrong answers in a row so far."""
    conn.execute(
        update(portal_messages)
        .where(portal_messages.c.id == copy_id)
        .values(failed_codes=portal_messages.c.failed_codes + 1)
    )
    failed = conn.execute(
        select(portal_messages.c.failed_codes).where(portal_messages.c.id == copy_id)
    ).scalar_one_or_none()
    return int(failed or 0)


def lock(conn: Connection, copy_id: int, until: float) -> None:
    """Lock the link until `until`; its code stops working and the count starts again."""
    conn.execute(
        update(portal_messages)
        .where(portal_messages.c.id == copy_id)
        .values(locked_until=until, failed_codes=0, code_hash=None, code_expires_at=None)
    )


def start_session(
    conn: Connection, copy_id: int, session_hash: str, now: float, expires_at: float
) -> None:
    """A browser proved control of the address: its code is used up, its session starts.
    Sessions that ended are dropped here, so the table does not grow."""
    conn.execute(delete(portal_sessions).where(portal_sessions.c.expires_at <= now))
    conn.execute(
        update(portal_messages)
        .where(portal_messages.c.id == copy_id)
        .values(failed_codes=0, code_hash=None, code_expires_at=None)
    )
    conn.execute(
        insert(portal_sessions).values(
            session_hash=session_hash, portal_id=copy_id, created_at=now, expires_at=expires_at
        )
    )


def session_opens(conn: Connection, session_hash: str, copy_id: int, now: float) -> bool:
    """Whether this session is live and was started for this copy."""
    found = conn.execute(
        select(portal_sessions.c.portal_id).where(
            portal_sessions.c.session_hash == session_hash,
            portal_sessions.c.portal_id == copy_id,
            portal_sessions.c.expires_at > now,
        )
    ).first()
    return found is not None
