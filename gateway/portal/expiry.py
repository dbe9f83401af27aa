"""The server's expiry task: copies whose time ran out are closed and shredded.

Pages check `expires_at` themselves, so a copy is unreadable the moment its
time runs out; this task destroys its content soon after (within `interval`),
in batches so that a backlog never holds the write lock long.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from gateway import periodic
from gateway.logs import event
from gateway.portal import lifecycle
from gateway.store.database import Database

log = logging.getLogger("gateway.portal")

INTERVAL = 60.0  # seconds between passes
BATCH = 200  # copies closed per transaction


class Expiry:
    def __init__(self, db: Database, interval: float = INTERVAL, batch: int = BATCH) -> None:
        self.db = db
        self.interval = interval
        self.batch = batch

    async def run_forever(self, stop: asyncio.Event) -> None:
        """A pass now and then every `interval` seconds until `stop` is set."""
        await periodic.every(self.interval, stop, self.run_once, log, "portal_expiry_failed")

    async def run_once(self, now: float) -> int:
        """Close every copy due at `now`, a batch per transaction; how many were closed."""
        total = 0
        while True:
            closed = await self.db.write(partial(lifecycle.expire_due, now=now, limit=self.batch))
            total += closed
            if closed < self.batch:
                break
        if total:
            event(log, "portal_expired", copies=total)
        return total
