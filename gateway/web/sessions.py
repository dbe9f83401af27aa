"""Server-side sessions of people signed in to the reviewer's pages.

The browser holds a random secret in a cookie; the store keeps only its
SHA-256, the person, whether every factor was given (`verified`), when it was
last used and when it ends whatever happens (the absolute lifetime). A session
opens pages while it is verified, not past its end, and used within the idle
timeout; ending it deletes its row, so a stolen cookie stops working too.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from gateway.store.schema import web_sessions


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    session_hash: str
    user_id: int
    verified: bool
    last_seen_at: float
    expires_at: float

    def live(self, now: float, idle_seconds: float) -> bool:
        return now < self.expires_at and now - self.last_seen_at < idle_seconds


def start(conn: Connection, user_id: int, verified: bool, now: float, expires_at: float) -> str:
    """A new session; returns the cookie's secret. Ended ones are dropped here."""
    conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))
    secret = secrets.token_urlsafe(32)
    conn.execute(
        insert(web_sessions).values(
            session_hash=secret_hash(secret),
            user_id=user_id,
            verified=verified,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
        )
    )
    return secret


def find(conn: Connection, secret: str) -> Session | None:
    row = conn.execute(
        select(web_sessions).where(web_sessions.c.session_hash == secret_hash(secret))
    ).first()
    if row is None:
        return None
    r = row._mapping
    return Session(
        r["session_hash"], r["user_id"], r["verified"], r["last_seen_at"], r["expires_at"]
    )


def touch(conn: Connection, session_hash: str, now: float) -> None:
    conn.execute(
        update(web_sessions)
        .where(web_sessions.c.session_hash == session_hash)
        .values(last_seen_at=now)
    )


def end(conn: Connection, session_hash: str) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.session_hash == session_hash))


def end_all(conn: Connection, user_id: int) -> None:
    """Every session of this person (new password, disabled, locked out)."""
    conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id))
