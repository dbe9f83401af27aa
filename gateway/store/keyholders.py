"""Which master key each running server process seals new mail with.

Every server process reports it in DATA_DIR/run/keys-PID.json at start and
after each reload of its keyring. A report after a reload is written only
once every write the process queued before the reload is committed (one
empty write through the group-committing writer, which keeps order): when
a process reports key K, no row it sealed under an older key is still on
its way to the database. `phigate keys rotate` waits for these reports
before its last re-wrap pass; `phigate keys retire` refuses a key that a
process still seals with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import Connection

from gateway.logs import event
from gateway.runstate import live_reports, remove_report, write_report
from gateway.store.database import Database
from gateway.store.keyring import Keyring, KeyringError

log = logging.getLogger("gateway.keyring")

_REPORT = "keys"


@dataclass(frozen=True)
class KeyHolder:
    pid: int
    current: str  # the key this process wraps new data keys with
    reported_at: float
    error: str | None  # why its last reload failed; None if it succeeded


def running_holders(data_dir: Path) -> list[KeyHolder]:
    """The reports of the server processes alive now."""
    holders = []
    for report in live_reports(data_dir, _REPORT):
        try:
            holders.append(KeyHolder(**report))
        except TypeError:
            continue  # written by another version
    return holders


def _nothing(_conn: Connection) -> None:
    """An empty write: it commits after every write queued before it."""


class KeyReporter:
    """Reports this server process's current master key (create it on the event loop)."""

    def __init__(self, data_dir: Path, keyring: Keyring, db: Database) -> None:
        self.data_dir = data_dir
        self.keyring = keyring
        self.db = db
        self._loop = asyncio.get_running_loop()
        self._pending: set[asyncio.Task[None]] = set()
        self._stopped = False
        keyring.on_reload = self.changed
        keyring.follow_current()  # a rotation since the keyring was read
        self._write(None)  # nothing is sealed before the first report

    def reload(self) -> None:
        """SIGHUP: read the keys directory again; on error keep the loaded keys."""
        try:
            self.keyring.reload()  # reports through changed()
        except KeyringError as exc:
            event(log, "keyring_reload_failed", logging.ERROR, problem=str(exc))
            self._report_after_queued_writes(str(exc))

    def changed(self) -> None:
        """The keyring was reloaded (in any thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the process is stopping
            self._loop.call_soon_threadsafe(self._report_after_queued_writes, None)

    def stopped(self) -> None:
        self._stopped = True  # a report still waiting for its write must not come back
        remove_report(self.data_dir, _REPORT)

    def _report_after_queued_writes(self, error: str | None) -> None:
        task = self._loop.create_task(self._report(error))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _report(self, error: str | None) -> None:
        try:
            await self.db.write(_nothing)
        except Exception:  # a failed write stored nothing under the old key either
            event(log, "key_report_write_failed", logging.WARNING)
        if error is None:
            event(
                log,
                "keyring_reloaded",
                current=self.keyring.current_key_id,
                keys=len(self.keyring.key_ids),
            )
        self._write(error)

    def _write(self, error: str | None) -> None:
        if self._stopped:
            return
        holder = KeyHolder(os.getpid(), self.keyring.current_key_id, time.time(), error)
        try:
            write_report(self.data_dir, _REPORT, asdict(holder))
        except OSError:
            event(log, "key_report_unwritable", logging.WARNING)
