"""The live forwarder: audit events to a syslog collector over TLS (RFC 5425).

It reads events from the database behind a durable cursor
(gateway.audit.cursors), never from the mail path: intake and delivery write
their events as always, and the forwarder follows the trail. Only `batch`
events are in memory at a time; if the collector is down, the rest wait in
the database and go out when it is back, after a backoff that doubles up to
`backoff_max`. Mail never waits for it.

Syslog over TCP has no acknowledgement. A batch counts as delivered, and the
cursor passes it, once it was written and the connection stayed open for
`confirm_after` seconds; a collector that closes the connection, or dies,
before then gets the batch again on the next connection. Delivery is thus
at-least-once: the event id in each message lets a SIEM drop repeats.

One process forwards at a time: it holds the cursor's lease and renews it
as it goes; the others wait and take over if it stops renewing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path

from gateway import metrics
from gateway.audit import cursors, search
from gateway.audit.formats import SyslogFormat, octet_counted
from gateway.config import AuditForwardConfig, parse_host_port
from gateway.logs import event
from gateway.store.database import Database

log = logging.getLogger("gateway.audit")

_ALL = search.Filters()


class ForwarderSetupError(Exception):
    """A certificate or key file of the forwarder that cannot be used."""


def client_context(config: AuditForwardConfig, path: Callable[[str], Path]) -> ssl.SSLContext:
    """The TLS client side: the collector's certificate verified, a client certificate if set."""
    try:
        context = ssl.create_default_context(
            cafile=str(path(config.ca_file)) if config.ca_file else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if config.cert_file and config.key_file:
            context.load_cert_chain(path(config.cert_file), path(config.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ForwarderSetupError(
            f"audit.forward: cannot load its CA file or client certificate ({exc}): fix "
            "ca_file, cert_file and key_file (PEM files; relative paths are under data_dir)"
        ) from None
    return context


class _Lost(Exception):
    """The collector closed the connection, or another process took the cursor."""


class Forwarder:
    def __init__(
        self,
        db: Database,
        config: AuditForwardConfig,
        syslog: SyslogFormat,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.db = db
        self.config = config
        self.syslog = syslog
        self.tls = tls
        self.host, self.port = parse_host_port(config.address) if config.address else ("", 0)
        self.holder = f"{socket.gethostname()}:{os.getpid()}"[:128]
        self._held = False
        self._moved = False  # the cursor moved in the current session

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Forward while this process holds the cursor, until `stop` is set (if enabled)."""
        if not self.config.enabled:
            return
        backoff = self.config.backoff_min
        try:
            while not stop.is_set():
                position = await asyncio.to_thread(self._take_lease, time.time())
                if position is None:  # another process forwards
                    await _pause(stop, self.config.lease_seconds / 3)
                    continue
                self._moved = False
                failure: tuple[str, int, str] | None = None
                try:
                    await self._session(position, stop)
                except (OSError, ssl.SSLError, TimeoutError, _Lost) as exc:
                    failure = ("audit_forward_interrupted", logging.WARNING, type(exc).__name__)
                except Exception as exc:  # the database: the next pass tries again
                    failure = ("audit_forward_failed", logging.ERROR, type(exc).__name__)
                if stop.is_set():
                    break
                # A session that moved the cursor was worth it: start again quickly.
                backoff = self.config.backoff_min if self._moved else backoff
                if failure is not None:
                    name, level, error = failure
                    event(log, name, level, error=error, retry_in=round(backoff, 1))
                await _pause(stop, backoff)
                if not self._moved:
                    backoff = min(backoff * 2, self.config.backoff_max)
        finally:
            if self._held:
                with contextlib.suppress(Exception):  # it runs out by itself anyway
                    await asyncio.to_thread(self._release)

    async def _session(self, position: int, stop: asyncio.Event) -> None:
        """One connection: send from `position` on, until `stop` or an error."""
        cfg = self.config
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.tls,
                server_hostname=(cfg.server_name or self.host) if self.tls else None,
            ),
            cfg.connect_timeout,
        )
        event(log, "audit_forward_connected", collector=cfg.address, after=position)
        loop = asyncio.get_running_loop()
        # Sent; sent and kept open for confirm_after; and passed by the cursor.
        sent, settled, confirmed = position, position, position
        unconfirmed: deque[tuple[int, float]] = deque()  # (last id of a batch, when written)
        renew_at = loop.time() + cfg.lease_seconds / 3
        moved_at = loop.time()
        try:
            while not stop.is_set():
                page = await self.db.read(
                    partial(search.search, filters=_ALL, limit=cfg.batch, after=sent)
                )
                if page.events:
                    # The page may hold events whose commits did not wait for the
                    # disk (delivery outcomes: gateway.store.database). This lease
                    # renewal's durable commit flushes the log they are in, so no
                    # event leaves that a crash of the machine could still undo.
                    await self._move(confirmed)
                    writer.write(b"".join(octet_counted(self.syslog.line(e)) for e in page.events))
                    await asyncio.wait_for(writer.drain(), cfg.send_timeout)
                    sent = page.events[-1].id
                    unconfirmed.append((sent, loop.time()))
                    metrics.AUDIT_FORWARDED.inc(len(page.events))
                if page.next_after is None:
                    # Caught up: wait, so that busy mail makes a few large reads
                    # rather than one small read per event.
                    pause = cfg.poll_interval
                    if unconfirmed and cfg.confirm_after:
                        pause = min(pause, cfg.confirm_after)
                    await _pause(stop, pause)
                if writer.is_closing() or reader.at_eof():
                    raise _Lost("the collector closed the connection")
                settled_at = loop.time() - cfg.confirm_after
                while unconfirmed and unconfirmed[0][1] <= settled_at:
                    settled = unconfirmed.popleft()[0]
                # At most one cursor write per confirm_after (a busy trail
                # would otherwise write one per batch), and one to renew.
                due = settled > confirmed and loop.time() - moved_at >= cfg.confirm_after
                if due or loop.time() >= renew_at:
                    await self._move(settled)
                    self._moved = self._moved or settled > confirmed
                    confirmed, moved_at = settled, loop.time()
                    renew_at = moved_at + cfg.lease_seconds / 3
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def _move(self, to: int) -> None:
        held = await asyncio.to_thread(self._move_held, to, time.time())
        if not held:
            self._held = False
            raise _Lost("another process holds the forwarder's cursor now")

    # Cursor writes, in threads: a short transaction of their own, never in
    # the writer's shared one (the mail path's). Not `behind_writers`: that
    # lock file is per process and its writer thread holds it unguarded, so a
    # second thread of the same process must not take it; SQLite's busy
    # timeout queues this rare, tiny write instead.
    def _take_lease(self, now: float) -> int | None:
        with self.db.transaction() as conn:
            position = cursors.take_lease(
                conn, self.config.cursor, self.holder, now, now + self.config.lease_seconds
            )
        self._held = position is not None
        return position

    def _move_held(self, to: int, now: float) -> bool:
        with self.db.transaction() as conn:
            return cursors.move_held(
                conn, self.config.cursor, self.holder, to, now, now + self.config.lease_seconds
            )

    def _release(self) -> None:
        with self.db.transaction() as conn:
            cursors.release(conn, self.config.cursor, self.holder)
        self._held = False


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
