"""The webhook outbox: rows written behind the audit trail, claimed, sent, settled.

A row is `pending` until its receiver answers 2xx (`sent`) or its time runs
out (`failed`: the dead letter, shown by `phigate webhook ls --failed` and
queued again by `phigate webhook retry`). A process claims due rows by moving
their `next_attempt_at` a lease ahead (PostgreSQL: FOR UPDATE SKIP LOCKED, so
processes and nodes claim different rows), then settles each with its
outcome. A process that dies in between leaves its rows due again once the
lease ends: delivery is at-least-once, and the `webhook-id` lets a receiver
drop the repeat.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, select, update

from gateway.config import WebhooksConfig
from gateway.store.schema import webhook_deliveries, webhook_subscriptions
from gateway.store.upsert import on_conflict_insert

PENDING, SENT, FAILED = "pending", "sent", "failed"
GONE = 410  # the receiver says the endpoint is gone for good: dead-lettered at once
_d = webhook_deliveries.c
_s = webhook_subscriptions.c
_ERROR_CHARS = 255


@dataclass(frozen=True)
class NewDelivery:
    subscription_id: int
    webhook_id: str
    kind: str
    payload: str


@dataclass(frozen=True)
class Claimed:
    id: int
    subscription_id: int
    webhook_id: str
    kind: str
    payload: str
    attempts: int  # including this one
    created_at: float


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: the receiver's status, or why there was none."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Delivery:
    """A row as `webhook ls` shows it."""

    id: int
    subscription: str
    webhook_id: str
    kind: str
    state: str
    attempts: int
    created_at: float
    next_attempt_at: float
    sent_at: float | None
    last_status: int | None
    last_error: str | None


def add(conn: Connection, rows: Sequence[NewDelivery], now: float) -> None:
    """Queue deliveries (one already queued under the same webhook id is kept as it is)."""
    if not rows:
        return
    values = [
        {
            "subscription_id": r.subscription_id,
            "webhook_id": r.webhook_id,
            "kind": r.kind,
            "payload": r.payload,
            "state": PENDING,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for r in rows
    ]
    conn.execute(on_conflict_insert(conn, webhook_deliveries).on_conflict_do_nothing(), values)


def any_due(conn: Connection, now: float) -> bool:
    due = select(_d.id).where(_d.state == PENDING, _d.next_attempt_at <= now).limit(1)
    return conn.execute(due).first() is not None


def claim(conn: Connection, now: float, limit: int, lease: float) -> list[Claimed]:
    """Take up to `limit` due deliveries for `lease` seconds, oldest due first."""
    due = (
        select(_d.id)
        .where(_d.state == PENDING, _d.next_attempt_at <= now)
        .order_by(_d.next_attempt_at, _d.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    conn.execute(
        update(webhook_deliveries)
        .where(_d.id.in_(ids))
        .values(next_attempt_at=now + lease, attempts=_d.attempts + 1)
    )
    rows = conn.execute(
        select(
            _d.id, _d.subscription_id, _d.webhook_id, _d.kind, _d.payload, _d.attempts,
            _d.created_at,
        ).where(_d.id.in_(ids)).order_by(_d.id)
    )  # fmt: skip
    return [Claimed(*row) for row in rows]


def backoff(
    config: WebhooksConfig, attempts: int, uniform: Callable[[float, float], float]
) -> float:
    """Seconds before the next attempt after `attempts` failed ones: doubling, spread."""
    base = min(config.retry_initial * 2 ** min(attempts - 1, 40), config.retry_max_interval)
    return float(base * uniform(1 - config.retry_jitter, 1 + config.retry_jitter))


def settle(
    conn: Connection,
    results: Sequence[tuple[Claimed, Outcome]],
    config: WebhooksConfig,
    now: float,
    uniform: Callable[[float, float], float] = random.uniform,
) -> list[tuple[Claimed, str]]:
    """Record each attempt's outcome; (delivery, sent | pending | failed) of each."""
    states: list[tuple[Claimed, str]] = []
    sent: dict[int, list[int]] = {}  # status -> ids: one statement for each
    for claimed, outcome in results:
        if outcome.ok:
            assert outcome.status is not None
            sent.setdefault(outcome.status, []).append(claimed.id)
            states.append((claimed, SENT))
            continue
        retry_at = now + backoff(config, claimed.attempts, uniform)
        dead = outcome.status == GONE or retry_at - claimed.created_at > config.retry_for
        state = FAILED if dead else PENDING
        conn.execute(
            update(webhook_deliveries)
            .where(_d.id == claimed.id)
            .values(
                state=state,
                next_attempt_at=retry_at,
                last_status=outcome.status,
                last_error=(outcome.error or "")[:_ERROR_CHARS] or None,
            )
        )
        states.append((claimed, state))
    for status, ids in sent.items():
        conn.execute(
            update(webhook_deliveries)
            .where(_d.id.in_(ids))
            .values(state=SENT, sent_at=now, last_status=status, last_error=None)
        )
    return states


def listing(
    conn: Connection, state: str | None = None, limit: int = 100, delivery_id: int | None = None
) -> list[Delivery]:
    """The newest deliveries (of one state, or the one with that id), newest first."""
    query = (
        select(
            _d.id, _s.name, _d.webhook_id, _d.kind, _d.state, _d.attempts, _d.created_at,
            _d.next_attempt_at, _d.sent_at, _d.last_status, _d.last_error,
        )
        .join(webhook_subscriptions, _s.id == _d.subscription_id)
        .order_by(_d.id.desc())
        .limit(limit)
    )  # fmt: skip
    if state is not None:
        query = query.where(_d.state == state)
    if delivery_id is not None:
        query = query.where(_d.id == delivery_id)
    return [Delivery(*row) for row in conn.execute(query)]


def counts(conn: Connection) -> dict[tuple[int, str], int]:
    """Deliveries per (subscription id, state)."""
    query = select(_d.subscription_id, _d.state, func.count()).group_by(
        _d.subscription_id, _d.state
    )
    return {(sid, state): int(n) for sid, state, n in conn.execute(query)}


def retry(conn: Connection, delivery_id: int, now: float) -> Delivery | None:
    """Queue a dead-lettered delivery again, due now with a fresh 24 hours; None if
    there is no dead-lettered delivery with that id."""
    moved = conn.execute(
        update(webhook_deliveries)
        .where(_d.id == delivery_id, _d.state == FAILED)
        .values(state=PENDING, next_attempt_at=now, created_at=now, attempts=0)
    ).rowcount
    if moved != 1:
        return None
    return listing(conn, delivery_id=delivery_id)[0]
