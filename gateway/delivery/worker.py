"""Delivery workers: claim due jobs, send each message once per next hop, record results.

A dispatcher leases jobs in batches and hands them, grouped by message, to a
fixed number of worker tasks. Each message is prepared (marketing consent,
header changes, unsubscribe links) and sent by routing.Router; what the results
come to is planned by outcomes.plan and committed here in one transaction with
the audit events and the DSN a bounce produces. Leases expire, so jobs held by
a worker that died are claimed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import defaultdict, deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Connection

from gateway import metrics
from gateway.audit import trail
from gateway.bounce import BounceMaker, queue_dsn
from gateway.config import DeliveryConfig
from gateway.delivery import outcomes, tlsrpt_send
from gateway.delivery.attempt import Attempt, SigningScope
from gateway.delivery.client import RecipientResult
from gateway.delivery.marketing import Marketing
from gateway.delivery.rewrite import apply_rewrite
from gateway.delivery.routing import Router
from gateway.delivery.tlsrpt import record_sessions
from gateway.delivery.transport import Transport
from gateway.logs import event
from gateway.siblings import Siblings
from gateway.store import queue
from gateway.store.database import Database
from gateway.store.keyring import Keyring, Sealed
from gateway.turns import Turns

log = logging.getLogger("gateway.delivery")

# The longest wait between claims while they fail (seconds): also the longest a
# recovered database waits for delivery to resume, unless new mail wakes it first.
CLAIM_BACKOFF_MAX = 5.0


@dataclass(frozen=True)
class Delivery:
    """The claimed jobs of one message, and the message (None once deleted)."""

    queue_id: str
    jobs: tuple[queue.ClaimedJob, ...]
    message: queue.MessageForDelivery | None = None


def _deliveries(
    conn: Connection, jobs: Sequence[queue.ClaimedJob], inline_size: int
) -> list[Delivery]:
    """Jobs a process holds, grouped by message, with their messages loaded."""
    by_message: dict[str, list[queue.ClaimedJob]] = defaultdict(list)
    for job in jobs:
        by_message[job.queue_id].append(job)
    loaded = queue.load_messages(conn, list(by_message), inline_size) if jobs else {}
    return [Delivery(q, tuple(group), loaded.get(q)) for q, group in by_message.items()]


def crashed(queue_id: str, recipients: Sequence[str], exc: Exception) -> list[RecipientResult]:
    """An unexpected error delivering to `recipients`, as a deferral like any other:
    retried, counted, and bounced at max_queue_lifetime. Only the error's type is
    logged and recorded: its text may quote the message."""
    error = type(exc).__name__
    event(log, "delivery_crashed", logging.ERROR, queue_id=queue_id, error=error)
    reply = f"delivery failed with an internal error ({error})"
    return [RecipientResult(r, None, "4.3.0", reply, None) for r in recipients]


# How long new mail a sibling announced waits to be claimed with what follows it.
_SIBLING_CLAIM_DELAY = 0.01


def claim_backoff(poll_interval: float, failures: int) -> float:
    """The wait after `failures` failed claims in a row: doubling from the poll
    interval up to CLAIM_BACKOFF_MAX, so a lost database is not asked at every poll."""
    return min(poll_interval * 2.0**failures, max(poll_interval, CLAIM_BACKOFF_MAX))


class DeliveryService:
    def __init__(
        self,
        config: DeliveryConfig,
        db: Database,
        keyring: Keyring,
        *,
        transport: Transport,
        router: Router,
        marketing: Marketing,
        bounces: BounceMaker,
        signing: SigningScope,
        reports_tls: bool,
        large_message_size: int,
        max_large_messages: int,
        siblings: Siblings | None = None,
    ) -> None:
        """`transport` is the one `router`'s modes send through (closed at stop);
        `reports_tls`: keep TLS sessions for TLS reports. Messages larger than
        `large_message_size` are loaded only when a worker takes them, and at most
        `max_large_messages` at a time are delivered. `siblings`: the node's other
        processes, one of which delivers new mail while this one holds every
        session (siblings.py)."""
        self.config = config
        self.db = db
        self.keyring = keyring
        self.transport = transport
        self.router = router
        self.marketing = marketing
        self.bounces = bounces
        self.signing = signing
        self.reports_tls = reports_tls
        self.large_message_size = large_message_size
        self._large_turns = Turns(max_large_messages)
        self.siblings = siblings
        self._stop_listening: Callable[[], None] | None = None
        self._sibling_wake: asyncio.TimerHandle | None = None
        # Unique to this service (two made in one second by one process differ too),
        # and within the lease_owner column's 64 octets whatever the host's name.
        self.owner = (
            f"{socket.gethostname()[:32]}:{os.getpid()}:{time.time():.0f}:{secrets.token_hex(3)}"
        )
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._work: asyncio.Queue[Delivery] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = 0
        # Workers promised to messages being stored (see lease).
        self._reserved = 0
        self._waiting_for_workers = False
        # Jobs claimed and not yet finished: the only leases renewed.
        self._held: set[int] = set()
        # New mail committed while every worker was busy, not yet claimed; claimed mail
        # waiting in _work: delivery is behind (see wait_for_capacity).
        self._behind = False
        # Intake waiting for delivery to catch up (see wait_for_capacity), oldest first.
        self._flow_waiters: deque[asyncio.Future[None]] = deque()
        # Loading what a sibling handed over, or handing back what could not be.
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._handed_ids: list[str] = []  # handed over by siblings, to be loaded

    def _free(self) -> int:
        """Workers neither busy nor spoken for by claimed or promised mail."""
        return self.config.workers - self._busy - self._work.qsize() - self._reserved

    def notify(self) -> None:
        """New jobs were committed: an idle sibling claims them, or this process
        without waiting for the next poll."""
        siblings = self.siblings
        if siblings is not None:
            idle = siblings.idle_sibling()
            if idle is not None:
                siblings.wake(idle)
                return
        self._woken()

    def _woken_by_sibling(self) -> None:
        # Mail comes from a sibling one message at a time: a moment's wait lets
        # one claim (a transaction) take several, and their outcomes share a commit.
        if self._sibling_wake is None:
            self._sibling_wake = asyncio.get_running_loop().call_later(
                _SIBLING_CLAIM_DELAY, self._claim_for_sibling
            )

    def _claim_for_sibling(self) -> None:
        self._sibling_wake = None
        self._woken()

    def _woken(self) -> None:
        if self._free() <= 0:
            self._behind = True  # no worker free for them: see wait_for_capacity
        self._wakeup.set()

    def lease(self, size: int) -> queue.Lease | None:
        """For intake (intake.Handoff): while a worker is free, new mail is stored
        with its jobs leased to this service and handed over (`take`) without a
        claim, a transaction and a wake-up less per message. While this process
        holds every session, the lease is an idle sibling's, if one of its workers
        is free (siblings.py). None once stopping, before `start`, for a large
        message (loaded at its turn), or with every worker spoken for: the mail
        is then claimed as usual."""
        if not self._tasks or self._stopping or size > self.large_message_size:
            return None
        until = time.time() + self.config.lease_seconds
        siblings = self.siblings
        idle = siblings.idle_sibling() if siblings is not None else None
        if siblings is not None and idle is not None:
            owner = siblings.owner_of(idle)
            if owner is None or siblings.in_hand(idle) >= self.config.workers:
                return None  # notified: the sibling claims it
            return queue.Lease(owner, until)
        if self._free() <= 0:
            return None
        self._reserved += 1
        self._publish_load()
        return queue.Lease(self.owner, until)

    def take(self, lease: queue.Lease, leased: queue.Leased | None) -> None:
        """What intake stored under `lease` (None: the store failed). Jobs not taken
        (stopping) keep their lease until stop() hands it back or, committed after
        that, until it lapses and they are claimed again."""
        if lease.owner != self.owner:
            if leased is not None and leased.jobs:
                self._hand_over(lease.owner, leased.message.queue_id)
            return
        self._reserved -= 1
        if leased is None or not leased.jobs or self._stopping:
            self._publish_load()
            if self._waiting_for_workers:  # the worker promised is free again
                self._wakeup.set()
            return
        self._hold([Delivery(leased.message.queue_id, leased.jobs, leased.message)])

    def _hand_over(self, owner: str, queue_id: str) -> None:
        """Name a message stored leased to a sibling on its pipe; if that cannot be
        done (the sibling stopped, or its pipe is full), hand its jobs back to the
        queue and have them claimed."""
        siblings = self.siblings
        if siblings is None or not siblings.hand_over(owner, queue_id):
            self._in_background(self._take_back(owner, queue_id))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task that stop() waits for before handing leases back."""
        task = asyncio.get_running_loop().create_task(work)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _take_back(self, owner: str, queue_id: str) -> None:
        def release(conn: Connection) -> int:
            return queue.release_leases(conn, owner, time.time(), queue_id)

        try:
            await self.db.write(release, durable=False)
        except Exception as exc:  # the database gone: the leases lapse by themselves
            event(log, "lease_release_failed", logging.ERROR, error=type(exc).__name__)
            return
        self.notify()

    def _handed(self, queue_ids: Sequence[str]) -> None:
        """A sibling stored these messages with their jobs leased to this service."""
        if self._stopping:
            return  # stop() hands back the leases, or they lapse
        # As with a claim, a moment's wait lets one read load several, and their
        # outcomes share a commit.
        if not self._handed_ids:
            asyncio.get_running_loop().call_later(_SIBLING_CLAIM_DELAY, self._adopt_handed)
        self._handed_ids += queue_ids

    def _adopt_handed(self) -> None:
        queue_ids, self._handed_ids = self._handed_ids, []
        if not self._stopping:  # else stop() hands back the leases
            self._in_background(self._adopt(queue_ids))

    async def _adopt(self, queue_ids: Sequence[str]) -> None:
        def load(conn: Connection) -> list[Delivery]:
            jobs = queue.handed_over(conn, self.owner, queue_ids)
            return _deliveries(conn, jobs, self.large_message_size)

        try:
            handed = await self.db.read(load)
        except Exception as exc:  # the leases lapse and the jobs are claimed again
            event(log, "handed_over_not_loaded", logging.ERROR, error=type(exc).__name__)
            return
        self._hold(handed)

    def _hold(self, deliveries: Sequence[Delivery]) -> None:
        """Claimed or handed-over deliveries, for the workers."""
        for delivery in deliveries:
            self._held.update(job.id for job in delivery.jobs)
            self._work.put_nowait(delivery)
        self._publish_load()

    def _publish_load(self) -> None:
        """What a busy sibling asks before handing this process new mail (lease)."""
        if self.siblings is not None:
            self.siblings.set_in_hand(self.config.workers - self._free())

    async def wait_for_capacity(self) -> None:
        """Postfix's in_flow_delay: while every worker is busy and more mail waits
        for one, a new message waits until a delivery finishes (one message per
        finished delivery), at most `in_flow_delay` seconds, then is taken anyway.
        Clients sending faster than this process delivers slow down to its pace, so
        the queue does not grow under a steady load; nothing is ever refused."""
        delay = self.config.in_flow_delay
        behind = self._behind or not self._work.empty()
        if delay <= 0 or not behind or self._stopping:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._flow_waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), delay)
            metrics.IN_FLOW_WAITS.labels("delivery").inc()
        except TimeoutError:
            metrics.IN_FLOW_WAITS.labels("timeout").inc()
        finally:
            if not waiter.done():
                self._flow_waiters.remove(waiter)
                waiter.cancel()

    def _release_flow_waiter(self) -> None:
        while self._flow_waiters:
            waiter = self._flow_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def start(self) -> None:
        if self.siblings is not None:
            self._stop_listening = self.siblings.listen(self._woken_by_sibling, self._handed)
            self.siblings.publish_owner(self.owner)
        self._tasks = [
            asyncio.create_task(self._dispatch(), name="delivery-dispatch"),
            asyncio.create_task(self._renew_leases(), name="delivery-leases"),
        ]
        self._tasks += [
            asyncio.create_task(self._work_loop(), name=f"delivery-{n}")
            for n in range(self.config.workers)
        ]

    async def stop(self, grace: float = 30.0) -> None:
        """Stop claiming, let in-flight deliveries finish, hand back unstarted leases."""
        self._stopping = True
        if self.siblings is not None:
            self.siblings.publish_owner("")  # no more mail handed over
        if self._stop_listening is not None:
            self._stop_listening()
        self._wakeup.set()
        while self._flow_waiters:  # intake waits for no delivery that will not come
            self._release_flow_waiter()
        self._tasks[1].cancel()  # lease renewal sleeps; nothing to finish there
        for _ in range(self.config.workers):
            self._work.put_nowait(Delivery("", ()))  # one stop marker per worker
        _done, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # Mail being handed back or loaded: settled before the leases are released.
        await asyncio.gather(*self._side_tasks, return_exceptions=True)
        try:
            released = await self.db.write(
                lambda conn: queue.release_leases(conn, self.owner, time.time()), durable=False
            )
        except Exception as exc:  # the database gone: the leases lapse by themselves
            event(log, "lease_release_failed", logging.ERROR, error=type(exc).__name__)
            released = 0
        await self.transport.close()
        event(log, "delivery_stopped", released=released)

    # --- claiming ------------------------------------------------------------

    async def _dispatch(self) -> None:
        failures = 0  # claims failed in a row (the database gone): the wait grows
        while not self._stopping:
            free = self._free()
            claimed: list[Delivery] = []
            wait = self.config.poll_interval
            if free > 0:
                try:
                    claimed = await self._claim(free * 4)
                    # Fewer jobs than asked for: every due job is claimed.
                    self._behind = self._behind and sum(len(d.jobs) for d in claimed) >= free * 4
                    if failures:
                        event(log, "claim_resumed", failed=failures)
                    failures = 0
                except Exception as exc:
                    failures += 1
                    wait = claim_backoff(self.config.poll_interval, failures)
                    error = type(exc).__name__
                    event(log, "claim_failed", logging.ERROR, error=error, retry_in=wait)
            if self._stopping:
                break
            self._hold(claimed)
            if not claimed or free <= 0:
                self._waiting_for_workers = free <= 0
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), wait)

    async def _renew_leases(self) -> None:
        lease = self.config.lease_seconds
        while not self._stopping:
            await asyncio.sleep(lease / 3)
            if self._held:
                until = time.time() + lease
                held = list(self._held)
                try:
                    await self.db.write(
                        partial(queue.renew_leases, owner=self.owner, until=until, job_ids=held),
                        durable=False,
                    )
                except Exception:
                    event(log, "lease_renewal_failed", logging.ERROR)

    async def _claim(self, limit: int) -> list[Delivery]:
        """Lease due jobs and load their messages in one transaction, grouped by message."""
        now = time.time()
        lease = self.config.lease_seconds

        def claim(conn: Connection) -> list[Delivery]:
            jobs = queue.claim(conn, self.owner, now, lease, limit)
            return _deliveries(conn, jobs, self.large_message_size)

        # Lost to a crash of the machine, a claim only makes the jobs due again.
        return await self.db.write(claim, durable=False)

    async def _work_loop(self) -> None:
        while True:
            delivery = await self._work.get()
            if not delivery.jobs:
                return
            if self._stopping:
                continue  # its lease is released by stop()
            self._busy += 1
            try:
                await self._deliver(delivery)
            except Exception as exc:
                await self._record_crash(delivery, exc)
            finally:
                self._held.difference_update(job.id for job in delivery.jobs)
                self._busy -= 1
                self._publish_load()
                self._release_flow_waiter()
                if self._waiting_for_workers:  # otherwise new mail wakes the dispatcher
                    self._wakeup.set()

    # --- one message -----------------------------------------------------------

    async def _deliver(self, delivery: Delivery) -> None:
        message = delivery.message
        if message is None:
            return  # deleted while queued; the delete already settled its jobs
        if not message.large:
            await self._attempt(delivery, message, message.sealed)
            return
        async with self._large_turns:
            queue_id = delivery.queue_id
            contents = self.db.contents
            sealed = await self.db.read(lambda conn: queue.load_sealed(conn, queue_id, contents))
            await self._attempt(delivery, message, sealed)

    async def _attempt(
        self, delivery: Delivery, message: queue.MessageForDelivery, sealed: Sealed | None
    ) -> None:
        if sealed is None:
            return  # deleted while queued; the delete already settled its jobs
        started = time.perf_counter()
        content = self.keyring.open(sealed, delivery.queue_id.encode())
        attempt = Attempt(
            message.sender,
            delivery.queue_id,
            self.signing.domains_for(message),
            message.listener != tlsrpt_send.LISTENER,
            principal=message.principal,
            portal_terms={job.recipient: job.portal for job in delivery.jobs if job.portal},
            fresh_dns=any(job.attempts > 0 for job in delivery.jobs),
        )
        jobs, stopped = await self.marketing.still_consented(delivery.queue_id, delivery.jobs)
        attempt.results += stopped
        # Recipients that leave the same way with the same header changes share
        # one transaction; the others get their own. Marketing goes one
        # recipient at a time: each gets its own unsubscribe link.
        plans: dict[tuple[tuple[str, ...], queue.Rewrite | None, str], list[str]] = defaultdict(
            list
        )
        for job in jobs:
            plans[(job.via, job.rewrite, job.recipient if job.purpose else "")].append(
                job.recipient
            )
        for (via, rewrite, marketed_to), recipients in plans.items():
            try:
                body = apply_rewrite(content, rewrite)
                if marketed_to:
                    footer = rewrite.footer if rewrite is not None else None
                    body = self.marketing.with_unsubscribe(body, marketed_to, footer)
                attempt.results += await self.router.send(attempt, via, recipients, body)
            except Exception as exc:  # the other transactions' results still count
                attempt.results += crashed(delivery.queue_id, recipients, exc)
        await self._record(message, delivery, attempt)
        metrics.ATTEMPT_SECONDS.observe(time.perf_counter() - started)

    async def _record_crash(self, delivery: Delivery, exc: Exception) -> None:
        """Defer every job of a delivery that failed outside a transaction (opening
        the message, checking consent, recording results). If even that cannot be
        recorded, the leases lapse and the jobs are claimed again."""
        results = crashed(delivery.queue_id, [job.recipient for job in delivery.jobs], exc)
        message = delivery.message
        if message is None:
            return
        # Nothing is sent from here, so nothing may be signed.
        attempt = Attempt(message.sender, delivery.queue_id, frozenset(), results=results)
        try:
            await self._record(message, delivery, attempt)
        except Exception as again:
            event(
                log,
                "delivery_crash_not_recorded",
                logging.ERROR,
                queue_id=delivery.queue_id,
                error=type(again).__name__,
            )

    # --- results ---------------------------------------------------------------

    async def _record(
        self,
        message: queue.MessageForDelivery,
        delivery: Delivery,
        attempt: Attempt,
    ) -> None:
        """Commit what outcomes.plan makes of the attempt; a job whose lease was lost
        to another worker is left to it."""
        now = time.time()
        plan = outcomes.plan(message, delivery.jobs, attempt.results, now, self.config)
        dsn = None
        if plan.dsn:
            dsn = self.bounces.dsn(
                queue_id=message.queue_id,
                sender=message.sender,
                message_id=message.message_id,
                received_at=message.received_at,
                failed=plan.dsn,
                now=now,
            )

        def commit(conn: Connection) -> None:
            events = [
                done.audit
                for done in plan.outcomes
                if queue.finish_job(
                    conn,
                    done.job.id,
                    self.owner,
                    state=done.state,
                    now=now,
                    attempts_done=done.attempts_done,
                    code=done.result.code,
                    status=done.result.status,
                    reply=done.result.reply,
                    remote_host=done.result.remote_host,
                    next_attempt_at=done.next_attempt_at,
                )
            ]
            if dsn is not None and any(e.event == "bounced" for e in events):
                events.append(queue_dsn(conn, dsn, message.queue_id, message.sender, now))
            trail.append(conn, events)
            if self.reports_tls:
                record_sessions(conn, attempt.sessions, now)
            queue.drop_finished_content(conn, message.queue_id)

        # Lost to a crash of the machine, an outcome is an attempt made again
        # (at-least-once): the accept behind it was durable, and so is the first
        # durable commit after this one. It may wait a moment for company (the
        # next accept's commit): only this worker waits for it.
        await self.db.write(commit, durable=False, lingers=True)
        for done in plan.outcomes:
            mode = done.result.mode
            metrics.DELIVERIES.labels(mode, done.audit.event).inc()
            if done.state == queue.DELIVERED:
                metrics.DELIVERY_SECONDS.labels(mode).observe(now - message.received_at)
            event(
                log,
                done.audit.event,
                queue_id=message.queue_id,
                job=done.job.id,
                code=done.result.code,
                status=done.result.status,
            )
        if dsn is not None:
            self.notify()
