"""Webhooks while the server runs: the outbox fed behind the trail, and sent.

**Feeding.** The audit trail already records every outcome a webhook reports,
in the transaction of the change itself. One process at a time (the holder of
the `webhooks.cursor` export cursor's lease, gateway.audit.cursors) reads the
events after the cursor, turns those a subscription wants into outbox rows
and moves the cursor, all in one transaction: each event is queued once.
Mail never waits for it: the trail is read from the database afterwards.

**Sending.** Every process claims due rows (gateway.webhooks.outbox), posts
them signed (gateway.webhooks.sender), at most `concurrency` at a time, and
settles each: sent on a 2xx, retried later with a doubling back-off, or
dead-lettered once `retry_for` has passed (410 Gone at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, func, select

from gateway import metrics
from gateway.audit import cursors
from gateway.config import WebhooksConfig
from gateway.logs import event
from gateway.store import audit_facets
from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.store.schema import audit_events, audit_recipients, portal_messages
from gateway.webhooks import events, outbox, subscriptions
from gateway.webhooks.events import StatusEvent
from gateway.webhooks.outbox import Claimed, NewDelivery, Outcome
from gateway.webhooks.sender import Sender
from gateway.webhooks.subscriptions import Subscription

log = logging.getLogger("gateway.webhooks")

_a = audit_events.c
_READ = (_a.id, _a.ts, _a.event, _a.result, _a.queue_id, _a.principal, _a.recipients, _a.code,
         _a.detail)  # fmt: skip


class _LostLease(Exception):
    """Another process holds the webhooks cursor now: this pass's rows are rolled back."""


def _portal_principal(conn: Connection, e: StatusEvent) -> list[str]:
    p = portal_messages.c
    query = select(p.principal).where(
        p.queue_id == e.queue_id, p.recipient == e.recipient, p.principal.is_not(None)
    )
    return [str(name) for name in conn.execute(query.limit(1)).scalars()]


def _senders_to(conn: Connection, e: StatusEvent) -> list[str]:
    """Principals whose mail was delivered to the recipient who unsubscribed."""
    r = audit_recipients.c
    query = (
        select(_a.principal)
        .join(audit_recipients, r.event_id == _a.id)
        .where(r.recipient == e.recipient, _a.event == "delivered", _a.principal.is_not(None))
        .distinct()
    )
    return [str(name) for name in conn.execute(query).scalars()]


def principals_of(conn: Connection, e: StatusEvent) -> list[str]:
    """Whose subscriptions an event goes to: the principal whose mail it is about.

    Portal expiry names none: the copy's row does. An unsubscribe names no
    message: it goes to every principal that delivered mail to that address.
    """
    if e.principal is not None:
        return [e.principal]
    if e.kind == "portal_expired":
        return _portal_principal(conn, e)
    if e.kind == "unsubscribed":
        return _senders_to(conn, e)
    return []


def tokens_of(conn: Connection, found: Sequence[StatusEvent]) -> dict[str, str]:
    """The API token each of these events' messages was sent with, by queue id (those sent
    with one only), as the message's `accepted` audit event records it."""
    queue_ids = sorted({e.queue_id for e in found if e.queue_id is not None})
    if not queue_ids:
        return {}
    query = select(_a.queue_id, _a.detail).where(
        _a.queue_id.in_(queue_ids), _a.event == "accepted", _a.detail.like("token=%")
    )
    named = ((row.queue_id, audit_facets.accepted_token(row.detail)) for row in conn.execute(query))
    return {queue_id: token for queue_id, token in named if token is not None}


def plan(conn: Connection, found: Sequence[StatusEvent]) -> list[NewDelivery]:
    """The outbox rows for these events: one per event and subscription wanting it.

    A subscription gets only the events that came after it was made: those of its
    principal's mail, or of the mail sent with its API token.
    """
    if not found:
        return []
    whose = {id(e): principals_of(conn, e) for e in found}
    names = sorted({name for names in whose.values() for name in names})
    by_principal: dict[str, list[Subscription]] = defaultdict(list)
    for sub in subscriptions.for_principals(conn, names) if names else []:
        by_principal[sub.principal or ""].append(sub)
    tokens = tokens_of(conn, found) if subscriptions.any_for_tokens(conn) else {}
    by_token: dict[str, list[Subscription]] = defaultdict(list)
    for sub in subscriptions.for_tokens(conn, list(tokens.values())) if tokens else []:
        by_token[sub.token or ""].append(sub)
    rows: list[NewDelivery] = []
    index: dict[int, int] = defaultdict(int)  # recipients seen per audit event
    for e in found:
        n = index[e.event_id]
        index[e.event_id] += 1
        token = tokens.get(e.queue_id) if e.queue_id is not None else None
        wanting = [sub for name in whose[id(e)] for sub in by_principal.get(name, ())]
        wanting += by_token.get(token, []) if token is not None else []
        for sub in wanting:
            if e.kind in sub.kinds and e.ts >= sub.created_at:
                rows.append(NewDelivery(sub.id, e.webhook_id(sub.id, n), e.kind, events.payload(e)))
    return rows


class Webhooks:
    def __init__(
        self, db: Database, keyring: Keyring, config: WebhooksConfig, sender: Sender
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.config = config
        self.sender = sender
        self.holder = f"{socket.gethostname()}:{os.getpid()}"[:128]
        self._held = False
        self._limit = asyncio.Semaphore(config.concurrency)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Feed (while holding the cursor) and send, until `stop` is set (if enabled)."""
        if not self.config.enabled:
            return
        try:
            while not stop.is_set():
                busy = False
                try:
                    fed = await asyncio.to_thread(self.feed, time.time())
                    sent = await self.send_due()
                    busy = fed >= self.config.batch or sent >= self.config.batch
                except _LostLease:
                    self._held = False
                except Exception as exc:  # the database: the next pass tries again
                    event(log, "webhooks_failed", logging.ERROR, error=type(exc).__name__)
                if not busy:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.config.poll_interval)
        finally:
            if self._held:
                with contextlib.suppress(Exception):  # it runs out by itself anyway
                    await asyncio.to_thread(self._release)
            await self.sender.close()

    # -- feeding (in a thread: a short transaction of its own) -------------

    def feed(self, now: float) -> int:
        """Queue the webhooks of the next batch of audit events; how many events were read."""
        cfg = self.config
        with self.db.reading() as conn:  # reads first: an idle pass writes nothing
            if not subscriptions.any_exist(conn):
                return 0  # nothing to read, nothing written (the first `add` sets the cursor)
            if self._nothing_to_do(conn, now):
                return 0
        with self.db.transaction() as conn:
            if cursors.get(conn, cfg.cursor) is None:  # removed by hand: not the whole trail
                cursors.restart_at_head(conn, cfg.cursor, now)
            position = cursors.take_lease(
                conn, cfg.cursor, self.holder, now, now + cfg.lease_seconds
            )
            self._held = position is not None
            if position is None:
                return 0
            rows = list(
                conn.execute(
                    select(*_READ).where(_a.id > position).order_by(_a.id).limit(cfg.batch)
                ).mappings()
            )
            if not rows:
                return 0
            found = [
                e for row in rows if row["event"] in events.SOURCES for e in events.from_audit(row)
            ]
            outbox.add(conn, plan(conn, found), now)
            to = int(rows[-1]["id"])
            if not cursors.move_held(
                conn, cfg.cursor, self.holder, to, now, now + cfg.lease_seconds
            ):
                raise _LostLease()
        return len(rows)

    def _nothing_to_do(self, conn: Connection, now: float) -> bool:
        """Another process feeds, or this one holds a fresh lease and has caught up."""
        cursor = cursors.get(conn, self.config.cursor)
        if cursor is None or not cursor.leased(now):
            return False
        if cursor.holder != self.holder:
            return True
        fresh = (cursor.lease_until or 0.0) - now > self.config.lease_seconds / 2
        newest = conn.execute(select(func.max(_a.id))).scalar()
        return fresh and (newest is None or newest <= cursor.event_id)

    def _release(self) -> None:
        with self.db.transaction() as conn:
            cursors.release(conn, self.config.cursor, self.holder)
        self._held = False

    # -- sending -----------------------------------------------------------

    async def send_due(self) -> int:
        """Claim the deliveries due, post them, record the outcomes; how many were claimed."""
        claimed, subs = await asyncio.to_thread(self._claim, time.time())
        if not claimed:
            return 0
        secrets = {sid: sub.secret(self.keyring) for sid, sub in subs.items()}
        outcomes = await asyncio.gather(
            *(self._post(c, subs.get(c.subscription_id), secrets) for c in claimed)
        )
        settled = await asyncio.to_thread(
            self._settle, list(zip(claimed, outcomes, strict=True)), time.time()
        )
        _report(settled, dict(zip((c.id for c in claimed), outcomes, strict=True)), subs)
        return len(claimed)

    def _claim(self, now: float) -> tuple[list[Claimed], dict[int, Subscription]]:
        lease = self.config.timeout + 30.0
        with self.db.reading() as conn:
            if not outbox.any_due(conn, now):  # a read: no write transaction when idle
                return [], {}
        with self.db.transaction() as conn:
            claimed = outbox.claim(conn, now, self.config.batch, lease)
            subs = subscriptions.by_id(conn, sorted({c.subscription_id for c in claimed}))
        return claimed, subs

    async def _post(
        self, claimed: Claimed, sub: Subscription | None, secrets: dict[int, bytes]
    ) -> Outcome:
        if sub is None:  # removed since it was claimed; its rows went with it
            return Outcome(None, "the subscription was removed")
        async with self._limit:
            return await self.sender.post(
                sub.url, secrets[sub.id], claimed.webhook_id, claimed.payload
            )

    def _settle(
        self, results: list[tuple[Claimed, Outcome]], now: float
    ) -> list[tuple[Claimed, str]]:
        with self.db.transaction() as conn:
            return outbox.settle(conn, results, self.config, now, random.uniform)


def _report(
    settled: Iterable[tuple[Claimed, str]],
    outcomes: dict[int, Outcome],
    subs: dict[int, Subscription],
) -> None:
    """Count and log each attempt: ids, kinds and statuses, never the body."""
    result_of = {outbox.SENT: "sent", outbox.PENDING: "failed", outbox.FAILED: "dead"}
    for claimed, state in settled:
        result = result_of[state]
        metrics.WEBHOOKS.labels(claimed.kind, result).inc()
        if result == "sent":
            continue
        outcome = outcomes[claimed.id]
        sub = subs.get(claimed.subscription_id)
        event(
            log,
            "webhook_dead_lettered" if result == "dead" else "webhook_failed",
            logging.WARNING,
            delivery=claimed.id,
            webhook=sub.name if sub is not None else None,
            kind=claimed.kind,
            attempts=claimed.attempts,
            status=outcome.status,
            error=outcome.error,
        )
