"""The daily report: the previous UTC day's report, mailed through phigate's own queue.

Once a day, after `reports.daily.at` (UTC), the server builds the report of
the day before and queues it, from the null sender like a DSN, for the
configured addresses; delivery signs and sends it like any mail. The report
is metadata only (principals, domains, counts), never an address's local
part. Every server process runs this task; an audit event ("report_mailed")
records each mail, and the first process to queue it makes the others skip
it (SQLite: the store's write lock; PostgreSQL: an advisory lock).
A day missed while the server was down is not sent later: run `phigate
report` for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from sqlalchemy import Connection, func, select

from gateway import periodic
from gateway.audit import indexer, trail
from gateway.audit.aggregates import DAY, Span
from gateway.audit.trail import AuditEvent
from gateway.config import ReportsConfig
from gateway.logs import event
from gateway.mail.addresses import domain_of
from gateway.reports.anomalies import day_text
from gateway.reports.formats import MEDIA_TYPES, RENDERERS
from gateway.reports.gather import report
from gateway.reports.model import Report
from gateway.reports.render_text import render as render_text
from gateway.store import queue
from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.store.schema import audit_events

log = logging.getLogger("gateway.reports")

INTERVAL = 60.0  # seconds between looks at the clock
LISTENER = "reports"  # messages.listener of the mail this writes
MAILED = "report_mailed"
# PostgreSQL: one lock id for "queueing the daily report" (held until COMMIT).
_MAIL_LOCK_ID = 0x706869676174_02  # "phigat" + 2


def due_day(now: float, minute_of_day: int) -> int | None:
    """The UTC day number whose report is due at `now`: yesterday's, once today's
    clock has passed `minute_of_day`; None before that."""
    today = int(now // DAY)
    if (now - today * DAY) / 60 < minute_of_day:
        return None
    return today - 1


def _detail(day: int) -> str:
    return f"daily day={day_text(day)}"


def mailed(conn: Connection, day: int) -> bool:
    """Whether the report of `day` was queued (it is sent after the day has ended)."""
    c = audit_events.c
    query = select(func.count()).where(
        c.event == MAILED, c.ts >= (day + 1) * DAY, c.detail.like(_detail(day) + " %")
    )
    return bool(conn.execute(query).scalar())


def message(
    made: Report, fmt: str, sender: str, to: Collection[str], hostname: str, now: float
) -> bytes:
    """The mail: the text report as its body and, for html or json, the report in
    that format attached."""
    day = day_text(int(made.since // DAY))
    mail = EmailMessage(policy=SMTP)
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Subject"] = f"phigate compliance report {day}: {len(made.anomalies)} anomalies"
    mail["Date"] = formatdate(now)
    mail["Message-ID"] = make_msgid(domain=domain_of(sender) or hostname)
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(render_text(made))
    if fmt != "text":
        maintype, subtype = MEDIA_TYPES[fmt].split("/")
        mail.add_attachment(
            RENDERERS[fmt](made).encode(),
            maintype=maintype,
            subtype=subtype,
            filename=f"phigate-report-{day}.{fmt}",
        )
    return mail.as_bytes()


class DailyReports:
    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        config: ReportsConfig,
        consumer: Collection[str],
        sender: str,
        hostname: str,
        notify: Callable[[], None] | None = None,
        interval: float = INTERVAL,
    ) -> None:
        """`notify` is called when a report was queued (wakes the delivery)."""
        self.db = db
        self.keyring = keyring
        self.config = config
        self.consumer = consumer
        self.sender = sender
        self.hostname = hostname
        self.notify = notify
        self.interval = interval

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Look now and then every `interval` seconds until `stop` is set."""
        await periodic.every(self.interval, stop, self.run_once, log, "daily_report_failed")

    async def run_once(self, now: float) -> str | None:
        """Queue the report due at `now` unless it was; its queue id if this queued it."""
        daily = self.config.daily
        day = due_day(now, daily.minute_of_day)
        if day is None or await self.db.read(lambda conn: mailed(conn, day)):
            return None
        span = Span(day * DAY, (day + 1) * DAY)
        await indexer.index_pending(self.db)  # the day's newest events count too
        made = await self.db.read(
            lambda conn: report(conn, span, self.config.anomalies, self.consumer, now)
        )
        content = message(made, daily.format, self.sender, daily.to, self.hostname, now)
        detail = f"{_detail(day)} format={daily.format} anomalies={len(made.anomalies)}"

        def store(conn: Connection) -> str | None:
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_MAIL_LOCK_ID)))
            if mailed(conn, day):
                return None  # another process was first
            # Like a TLS report: written here, from the postmaster, never bounced.
            queue_id = queue.insert_own_mail(
                conn, self.keyring, to=daily.to, content=content, listener=LISTENER, now=now,
                is_dsn=True,
            )  # fmt: skip
            done = AuditEvent(
                MAILED, "queued", queue_id=queue_id, sender="", recipients=tuple(daily.to),
                size=len(content), detail=detail, ts=now,
            )  # fmt: skip
            trail.append(conn, [done])
            return queue_id

        queued = await self.db.write(store)
        if queued is not None:
            event(log, "daily_report_queued", queue_id=queued, day=day_text(day))
            if self.notify is not None:
                self.notify()
        return queued
