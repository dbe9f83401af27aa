"""Recall, expiry and extension of portal copies, each audited in the same transaction.

`phigate portal`, the recall API and the expiry task change a copy's life
only through here, so each change has its audit event (metadata only: the
original queue id, the recipient, who asked). A copy whose time has run out
counts as expired at once (`Copy.shown_state`), before the expiry task shreds
it: it can be neither recalled nor extended. Functions take a Connection and
run in the caller's transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.store import portal
from gateway.store.portal import EXPIRED, OPEN_STATES, RECALLED, Copy

DAY = 86400.0
MAX_EXTEND_DAYS = 3650


class LifecycleError(Exception):
    """A change that cannot be made; the message says why (no address in it)."""


class UnknownMessage(LifecycleError):
    """No portal copy of that message (for that recipient)."""


class NothingOpen(LifecycleError):
    """Every copy asked about is closed already; `closed` names each one's state."""

    def __init__(self, message: str, closed: Sequence[tuple[str, str]]) -> None:
        super().__init__(message)
        self.closed = list(closed)  # (recipient, shown state)


def copies_of(conn: Connection, queue_id: str, recipient: str | None) -> list[Copy]:
    """The copies of a message (only the recipient's, if one is named); never empty."""
    found = portal.of_message(conn, queue_id)
    if not found:
        raise UnknownMessage(f"no portal message {queue_id}")
    if recipient is None:
        return found
    chosen = [c for c in found if c.recipient == recipient]
    if not chosen:
        raise UnknownMessage(f"portal message {queue_id} has no copy for that recipient")
    return chosen


def _open_ones(copies: Sequence[Copy], now: float, queue_id: str, why_not: str) -> list[Copy]:
    live = [c for c in copies if c.shown_state(now) in OPEN_STATES]
    if not live:
        closed = [(c.recipient, c.shown_state(now)) for c in copies]
        counts = Counter(state for _, state in closed)
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        raise NothingOpen(
            f"portal message {queue_id} has no open copy ({summary}): {why_not}", closed
        )
    return live


def _close(
    conn: Connection,
    copies: Sequence[Copy],
    state: str,
    by: str,
    now: float,
    actor: str | None = None,
) -> list[Copy]:
    """Close and shred the copies still open in the store; one audit event per copy closed."""
    closed = set(portal.close(conn, [c.id for c in copies], state, now))
    done = [c for c in copies if c.id in closed]
    trail.append(
        conn,
        [
            AuditEvent(
                event=f"portal_{state}",
                result="ok",
                queue_id=c.queue_id,
                recipients=(c.recipient,),
                detail=f"by={by}",
                ts=now,
                actor=actor,
            )
            for c in done
        ],
    )
    return done


def recall(
    conn: Connection, queue_id: str, recipient: str | None, by: str, now: float
) -> list[Copy]:
    """Recall the open copies of a message (or the recipient's): unreadable and shredded.

    `by` says who asked ("cli:<OS user>", "api:<token name>"): the audit
    event's actor, and its detail (by=...).
    """
    chosen = copies_of(conn, queue_id, recipient)
    live = _open_ones(chosen, now, queue_id, "nothing to recall")
    return _close(conn, live, RECALLED, by, now, actor=by)


def expire_due(conn: Connection, now: float, limit: int) -> int:
    """Close and shred up to `limit` copies whose time has run out; how many were closed."""
    due = portal.by_ids(conn, portal.due_to_expire(conn, now, limit))
    return len(_close(conn, due, EXPIRED, "expiry", now))


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def extend(
    conn: Connection, queue_id: str, recipient: str | None, days: int, by: str, now: float
) -> list[tuple[Copy, float]]:
    """Move the expiry of the open copies `days` later; (copy, new expiry) of each moved.

    `by` says who asked, as for `recall`: the audit event's actor.
    """
    if not 1 <= days <= MAX_EXTEND_DAYS:
        raise LifecycleError(f"extend by 1 to {MAX_EXTEND_DAYS} days, not {days}")
    chosen = copies_of(conn, queue_id, recipient)
    live = _open_ones(
        chosen,
        now,
        queue_id,
        "a closed copy's content is shredded, so it cannot be extended; send the message again",
    )
    moved: list[tuple[Copy, float]] = []
    for copy in live:
        new_expiry = copy.expires_at + days * DAY
        if portal.extend(conn, copy.id, new_expiry):
            moved.append((copy, new_expiry))
    trail.append(
        conn,
        [
            AuditEvent(
                event="portal_extended",
                result="ok",
                queue_id=copy.queue_id,
                recipients=(copy.recipient,),
                detail=f"{_day(copy.expires_at)}->{_day(new_expiry)}",
                ts=now,
                actor=by,
            )
            for copy, new_expiry in moved
        ],
    )
    return moved
