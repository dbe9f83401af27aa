"""The server's retention runs: what is due destroyed, old audit events pruned.

Every server process runs this task, but only one of all the processes and
nodes sharing the database does the work: the one holding the lease on the
cursor named `LEASE` (gateway.audit.cursors, the lease the audit forwarder
holds on its own cursor). The holder renews it in every batch's
transaction, so a batch is only ever committed by the holder; another
process takes over when a holder stops renewing (its lease runs out after
two intervals) or gives it up at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

from sqlalchemy import Connection

from gateway import periodic
from gateway.archive import destruction
from gateway.archive.retention import Schedule
from gateway.archive.storage import ArchiveStorage
from gateway.audit import cursors, pruning
from gateway.config import RetentionConfig
from gateway.logs import event
from gateway.store.database import Database

log = logging.getLogger("gateway.archive")

# The lease's cursor in audit_export_cursors: no export may use this name.
LEASE = "phigate-retention"
_MIN_LEASE = 300.0  # seconds; a long run renews it batch by batch


class ScheduledRetention:
    def __init__(
        self,
        db: Database,
        schedule: Schedule,
        config: RetentionConfig,
        hostname: str,
        storage: ArchiveStorage,
    ) -> None:
        self.db = db
        self.schedule = schedule
        self.config = config
        self.storage = storage
        self.actor = f"server:{hostname}"[:128]
        self.holder = f"{socket.gethostname()}:{os.getpid()}"[:128]
        self.lease_seconds = max(2 * config.run_every_seconds, _MIN_LEASE)
        self._stop: asyncio.Event | None = None

    async def run_forever(self, stop: asyncio.Event) -> None:
        """A run now and then every `run_every_seconds` until `stop` is set; a run in
        progress stops after its current batch."""
        self._stop = stop
        try:
            await periodic.every(
                self.config.run_every_seconds, stop, self.run_once, log, "retention_failed"
            )
        finally:
            with contextlib.suppress(Exception):  # it runs out by itself anyway
                await asyncio.to_thread(self.release)

    async def run_once(self, now: float) -> destruction.Outcome | None:
        """Destroy what is due at `now` and prune old audit events, if this process holds
        the lease; None when another does."""
        if not await asyncio.to_thread(self._take_lease, now):
            return None
        # In a thread, each batch a short transaction of its own: a long run must not
        # hold the mail path's shared write transaction.
        outcome = await asyncio.to_thread(
            destruction.run,
            self.db.transaction,
            self.schedule,
            now,
            self.actor,
            batch=self.config.batch,
            storage=self.storage,
            guard=self._go_on,
        )
        if outcome.destroyed_count or outcome.held:
            event(
                log,
                "retention_run",
                run_id=outcome.run_id,
                destroyed=outcome.destroyed_count,
                held=outcome.held,
                seconds=round(outcome.seconds, 3),
            )
        if not (self._stop is not None and self._stop.is_set()):
            await asyncio.to_thread(self._prune_audit, now)
        return outcome

    def _prune_audit(self, now: float) -> None:
        period = self.schedule.audit_events
        if period is None:
            return
        key = self.db.audit_key
        if key is None:
            return
        with self.db.reading() as conn:
            try:
                target = pruning.due(conn, key, period.before(now))
            except pruning.AuditDamaged:
                event(log, "audit_prune_refused", logging.ERROR, reason="trail does not verify")
                return
        if target is None:
            return
        with self.db.transaction() as conn:
            if not self._renew(conn):
                return
            done = pruning.prune(conn, target, self.actor, time.time())
        event(log, "audit_pruned", through_event=done.through_event, removed=done.events)

    # Lease writes: a short transaction of their own, like the forwarder's.
    def _take_lease(self, now: float) -> bool:
        with self.db.transaction() as conn:
            taken = cursors.take_lease(conn, LEASE, self.holder, now, now + self.lease_seconds)
        return taken is not None

    def _go_on(self, conn: Connection) -> bool:
        """Before each batch: not stopping, and still the lease's holder."""
        stopping = self._stop is not None and self._stop.is_set()
        return not stopping and self._renew(conn)

    def _renew(self, conn: Connection) -> bool:
        now = time.time()
        return cursors.move_held(conn, LEASE, self.holder, 0, now, now + self.lease_seconds)

    def release(self) -> None:
        """Give the lease up (at shutdown), so another process need not wait it out."""
        with self.db.transaction() as conn:
            cursors.release(conn, LEASE, self.holder)
