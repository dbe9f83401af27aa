"""SMTP TLS reporting (RFC 8460): where reports go, building them, and sending them.

An hour after a UTC day has ended, each policy domain with counters for that
day is looked up at `_smtp._tls.<domain>`. A domain without one valid TLSRPT
record gets no report, and its counters are dropped. Otherwise the day's
report goes, gzip-compressed, to the record's `rua` destinations: `mailto:` as
a message through phigate's own queue (delivered, retried and audited like any
other; null sender, so it is never bounced), `https:` as a POST to a server
whose certificate is verified. The report counts as sent once a destination
took it (RFC 8460 §3); otherwise it is tried again on later runs, for 24 hours
from the first attempt (§5.5).

Several processes or nodes may run a reporter on one store: a lease on the
report's row (table `tls_reports`) lets only one of them send a given report.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import re
import secrets
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime
from functools import partial
from typing import Literal
from urllib.parse import unquote

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import httpx
from dns.rdtypes.ANY.TXT import TXT
from sqlalchemy import Connection, and_, or_, select, update

from gateway import periodic
from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.config import TlsReportConfig
from gateway.delivery.mx import make_resolver
from gateway.delivery.tlsrpt import (
    DAY,
    CountRow,
    build_report,
    day_start,
    day_text,
    delete_counts,
    load_counts,
    sweep_counts,
    totals,
)
from gateway.logs import event
from gateway.mail.addresses import AddressError, normalise
from gateway.store import queue
from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.store.schema import tls_reports, tls_session_counts
from gateway.store.upsert import on_conflict_insert

__all__ = [
    "Destination",
    "DiscoveryError",
    "TlsReporter",
    "TlsRptLookup",
    "compress_report",
    "parse_destinations",
    "parse_record",
    "report_filename",
    "report_message",
]

log = logging.getLogger("gateway.delivery.tlsrpt")

# A day is reported this long after it ended, so counters recorded around
# midnight are in (and receivers are not all hit at 00:00).
REPORT_DELAY = 3600.0
RUN_INTERVAL = 3600.0
RETRY_AFTER = 1800.0
GIVE_UP_AFTER = float(DAY)  # RFC 8460 §5.5: redelivery for up to 24 hours
LEASE = 600.0  # one attempt (DNS, POSTs, queueing) ends well within this
KEEP_DAYS = 7  # counters never reported (reporting was off, store was down) go after this
HTTP_TIMEOUT = 30.0
DNS_TIMEOUT = 5.0
PARALLEL = 8  # reports in flight at once

MEDIA_TYPE = "application/tlsrpt+gzip"
SENDER = ""  # the null sender: a report is never bounced (no loops)
LISTENER = "tlsrpt"  # messages.listener of queued reports

# report states (tls_reports.state)
RETRY, SENDING = "retry", "sending"
SENT, SKIPPED, ABANDONED = "sent", "skipped", "abandoned"

_WSP = " \t"
# RFC 8460 §3: records that do not begin with "v=TLSRPTv1;" are discarded.
_VERSION = re.compile(rb"v=TLSRPTv1[ \t]*;")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")


# --- discovery (RFC 8460 §3) ---------------------------------------------------


class DiscoveryError(Exception):
    """The TLSRPT record could not be looked up (DNS trouble): try again later."""


@dataclass(frozen=True)
class Destination:
    """One place a report goes: a mailbox, or an HTTPS URL."""

    scheme: Literal["mailto", "https"]
    target: str


def parse_record(text: str) -> tuple[str, ...] | None:
    """The `rua` URIs of a TLSRPT record, or None if the record is not valid.

    tlsrpt-record = "v=TLSRPTv1" 1*(field-delim tlsrpt-field) [field-delim];
    unknown fields (extensions) are allowed and ignored.
    """
    fields = [part.strip(_WSP) for part in text.split(";")]
    if fields[0] != "v=TLSRPTv1":
        return None
    if len(fields) > 2 and fields[-1] == "":
        fields.pop()  # one trailing delimiter
    rua: tuple[str, ...] | None = None
    for item in fields[1:]:
        name, equals, value = item.partition("=")
        if not equals or not _EXT_NAME.fullmatch(name):
            return None
        if name == "rua":
            uris = tuple(uri.strip(_WSP) for uri in value.split(","))
            if rua is not None or not any(uris):
                return None
            rua = tuple(uri for uri in uris if uri)  # a stray trailing comma is tolerated
        elif not _EXT_VALUE.fullmatch(value):
            return None
    return rua


def parse_destinations(uris: Sequence[str]) -> list[Destination]:
    """The usable destinations among `rua` URIs; other schemes and malformed
    URIs are ignored (RFC 8460 §3 lets a submitter skip what it cannot use)."""
    found: list[Destination] = []
    for uri in uris:
        scheme, _, rest = uri.partition(":")
        destination: Destination | None = None
        if scheme.lower() == "mailto":
            mailbox = unquote(rest.partition("?")[0])
            with contextlib.suppress(AddressError):
                destination = Destination("mailto", normalise(mailbox))
        elif scheme.lower() == "https":
            with contextlib.suppress(httpx.InvalidURL):
                url = httpx.URL(uri)
                if url.scheme == "https" and url.host:
                    destination = Destination("https", str(url))
        if destination is not None and destination not in found:
            found.append(destination)
    return found


class TlsRptLookup:
    """Looks up a policy domain's report destinations with dnspython's async resolver."""

    def __init__(self, nameservers: Sequence[str] = (), timeout: float = DNS_TIMEOUT) -> None:
        # One lookup per domain and day: nothing to cache.
        resolver = make_resolver(nameservers, timeout)
        self._resolver = resolver
        self._timeout = timeout

    async def destinations(self, domain: str) -> list[Destination]:
        """Where `domain` wants its reports; [] when it publishes no valid record.

        Raises DiscoveryError when DNS gave no definite answer.
        """
        try:
            name = dns.name.from_text(f"_smtp._tls.{domain}")
        except (dns.exception.DNSException, ValueError):
            return []
        try:
            # dnspython enforces the lifetime; the outer bound guards a stalled transport.
            answer = await asyncio.wait_for(
                self._resolver.resolve(name, dns.rdatatype.TXT, search=False),
                self._timeout + 1.0,
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.DNSException, TimeoutError) as exc:
            raise DiscoveryError(
                f"TLSRPT lookup for {domain} failed: {type(exc).__name__}"
            ) from exc
        texts = [b"".join(rr.strings) for rr in answer if isinstance(rr, TXT)]
        records = [text for text in texts if _VERSION.match(text)]
        if len(records) != 1:  # RFC 8460 §3: not exactly one means no TLSRPT
            return []
        try:
            uris = parse_record(records[0].decode("ascii"))
        except UnicodeDecodeError:
            return []
        return parse_destinations(uris) if uris else []


# --- the report as a file and as a message (RFC 8460 §5) --------------------------


def report_filename(submitter: str, domain: str, day: int) -> str:
    """sender "!" policy-domain "!" begin-timestamp "!" end-timestamp ".json.gz" (§5.1)."""
    return f"{submitter}!{domain}!{day}!{day + DAY - 1}.json.gz"


def compress_report(report: dict[str, object]) -> bytes:
    # mtime=0: the same report compresses to the same bytes on every retry.
    return gzip.compress(json.dumps(report, separators=(",", ":")).encode(), mtime=0)


def report_message(
    *,
    submitter: str,
    from_address: str,
    to_address: str,
    domain: str,
    day: int,
    report_id: str,
    compressed: bytes,
    now: float,
) -> bytes:
    """The report as a multipart/report (report-type tlsrpt) message (§5.3)."""
    message = EmailMessage(policy=SMTP)
    message["From"] = from_address
    message["To"] = to_address
    message["Date"] = format_datetime(datetime.fromtimestamp(now, UTC))
    message["Message-ID"] = f"<{secrets.token_hex(16)}@{submitter}>"
    message["Subject"] = f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>"
    message["TLS-Report-Domain"] = domain
    message["TLS-Report-Submitter"] = submitter
    message["Auto-Submitted"] = "auto-generated"
    # RFC 8689: the report must get through even where the recipient's TLS is
    # broken, which is what it reports on (RFC 8460 §5.3.1).
    message["TLS-Required"] = "No"
    message["MIME-Version"] = "1.0"
    message.add_header("Content-Type", "multipart/report", report_type="tlsrpt")

    text = MIMEPart(policy=SMTP)
    text.set_content(
        f"This is an aggregate TLS report (RFC 8460) from {submitter}\n"
        f"for mail sent to {domain} on {day_text(day)} (UTC).\n"
        "It holds session counts only; the report is attached.\n"
    )
    attachment = MIMEPart(policy=SMTP)
    attachment.set_content(
        compressed,
        maintype="application",
        subtype="tlsrpt+gzip",
        disposition="attachment",
        filename=report_filename(submitter, domain, day),
    )
    message.set_payload([text, attachment])
    return message.as_bytes()


# --- report state: claiming and settling ---------------------------------------


@dataclass(frozen=True)
class _Claim:
    day: int
    domain: str
    report_id: str
    attempts: int  # doubles as the lease token
    first_attempt_at: float


def _due(conn: Connection, *, last_day: int, now: float) -> list[tuple[int, str]]:
    """(day, domain) pairs with counters of an ended day and no report done or in flight."""
    counts, reports = tls_session_counts, tls_reports
    joined = counts.outerjoin(
        reports,
        and_(reports.c.day == counts.c.day, reports.c.policy_domain == counts.c.policy_domain),
    )
    query = (
        select(counts.c.day, counts.c.policy_domain)
        .distinct()
        .select_from(joined)
        .where(
            counts.c.day <= last_day,
            or_(
                reports.c.day.is_(None),
                and_(reports.c.state.in_((RETRY, SENDING)), reports.c.due_at <= now),
            ),
        )
        .order_by(counts.c.day, counts.c.policy_domain)
    )
    return [(row.day, row.policy_domain) for row in conn.execute(query)]


def _claim(conn: Connection, *, day: int, domain: str, report_id: str, now: float) -> _Claim | None:
    """Lease the report of (day, domain) to this caller, or None if it is not due."""
    new_row = on_conflict_insert(conn, tls_reports).values(
        day=day,
        policy_domain=domain,
        report_id=report_id,
        state=RETRY,
        attempts=0,
        first_attempt_at=now,
        due_at=now,
        updated_at=now,
    )
    conn.execute(new_row.on_conflict_do_nothing(index_elements=["day", "policy_domain"]))
    row = conn.execute(
        update(tls_reports)
        .where(
            tls_reports.c.day == day,
            tls_reports.c.policy_domain == domain,
            tls_reports.c.state.in_((RETRY, SENDING)),
            tls_reports.c.due_at <= now,
        )
        .values(
            state=SENDING,
            attempts=tls_reports.c.attempts + 1,
            due_at=now + LEASE,
            updated_at=now,
        )
        .returning(tls_reports.c.report_id, tls_reports.c.attempts, tls_reports.c.first_attempt_at)
    ).first()
    if row is None:
        return None
    return _Claim(day, domain, row.report_id, row.attempts, row.first_attempt_at)


@dataclass(frozen=True)
class _Outcome:
    """How an attempt ends, computed before the write so the write can be re-run."""

    state: str
    due_at: float
    mails: tuple[tuple[queue.NewMessage, str], ...] = ()
    events: tuple[AuditEvent, ...] = ()


def _settle(conn: Connection, claim: _Claim, outcome: _Outcome, now: float) -> bool:
    """Record the attempt's end, if this caller still holds the lease; False if not."""
    changed = conn.execute(
        update(tls_reports)
        .where(
            tls_reports.c.day == claim.day,
            tls_reports.c.policy_domain == claim.domain,
            tls_reports.c.state == SENDING,
            tls_reports.c.attempts == claim.attempts,
        )
        .values(state=outcome.state, due_at=outcome.due_at, updated_at=now)
    ).rowcount
    if changed != 1:
        return False
    if outcome.state != RETRY:
        delete_counts(conn, claim.day, claim.domain)
    for message, recipient in outcome.mails:
        queue.insert_message(conn, message, [queue.NewJob(recipient, queue.DEFAULT_ROUTE)])
    trail.append(conn, outcome.events)
    return True


def _sweep(conn: Connection, before_day: int) -> None:
    sweep_counts(conn, before_day)
    conn.execute(tls_reports.delete().where(tls_reports.c.day < before_day))


# --- the periodic task -----------------------------------------------------------


class TlsReporter:
    """Sends the daily TLS reports; run_forever is the server's task, run_once one pass."""

    def __init__(
        self,
        config: TlsReportConfig,
        db: Database,
        keyring: Keyring,
        *,
        hostname: str,
        postmaster: str,
        nameservers: Sequence[str],
        ca_file: str | None,
        notify: Callable[[], None] | None = None,
        interval: float = RUN_INTERVAL,
    ) -> None:
        """`notify` is called when report messages were queued (wakes the delivery)."""
        self.enabled = config.enabled
        self.db = db
        self.keyring = keyring
        self.notify = notify
        self.interval = interval
        self.submitter = hostname
        self.organization = config.organization or hostname
        self.contact = config.contact or postmaster
        self.from_address = postmaster
        self.lookup = TlsRptLookup(nameservers)
        # The certificate of an HTTPS receiver is verified: against ca_file
        # when set, else against the system's trusted CAs.
        self._tls = ssl.create_default_context(cafile=ca_file)
        self._tls.minimum_version = ssl.TLSVersion.TLSv1_2

    async def run_forever(self, stop: asyncio.Event) -> None:
        """A pass now and then every `interval` seconds until `stop` is set (if enabled)."""
        if not self.enabled:
            return
        await periodic.every(self.interval, stop, self.run_once, log, "tlsrpt_run_failed")

    async def run_once(self, now: float) -> int:
        """Send the reports that are due at `now`; returns how many were sent."""
        await self.db.write(partial(_sweep, before_day=day_start(now) - KEEP_DAYS * DAY))
        due = await self.db.read(
            partial(_due, last_day=day_start(now - DAY - REPORT_DELAY), now=now)
        )
        if not due:
            return 0
        limit = asyncio.Semaphore(PARALLEL)
        async with httpx.AsyncClient(
            verify=self._tls,
            timeout=HTTP_TIMEOUT,
            follow_redirects=False,  # a redirect is not a delivery
            headers={"User-Agent": "phigate TLS reporting"},
        ) as client:
            outcomes = await asyncio.gather(
                *(self._report(client, limit, day, domain, now) for day, domain in due),
                return_exceptions=True,
            )
        sent = 0
        queued = False
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                event(log, "tlsrpt_failed", logging.ERROR, error=type(outcome).__name__)
                continue
            if outcome is None:
                continue
            sent += outcome.state == SENT
            queued = queued or bool(outcome.mails)
        if queued and self.notify is not None:
            self.notify()
        return sent

    async def _report(
        self, client: httpx.AsyncClient, limit: asyncio.Semaphore, day: int, domain: str, now: float
    ) -> _Outcome | None:
        """One report attempt; its outcome as recorded, None if another process has it."""
        async with limit:
            report_id = f"{day_text(day).replace('-', '')}.{secrets.token_hex(8)}@{self.submitter}"
            claim = await self.db.write(
                partial(_claim, day=day, domain=domain, report_id=report_id, now=now)
            )
            if claim is None:
                return None
            rows = await self.db.read(partial(load_counts, day=day, domain=domain))
            try:
                destinations = await self.lookup.destinations(domain) if rows else []
            except DiscoveryError as exc:
                event(log, "tlsrpt_lookup_failed", logging.WARNING, domain=domain, reason=str(exc))
                outcome = self._failed(claim, rows, now)
            else:
                if destinations:
                    outcome = await self._deliver(client, claim, rows, destinations, now)
                else:
                    outcome = _Outcome(SKIPPED, now)
            settled = await self.db.write(partial(_settle, claim=claim, outcome=outcome, now=now))
        if not settled:
            return None  # the lease ran out and another process took over
        if outcome.state in (SENT, ABANDONED):
            event(log, f"tlsrpt_{outcome.state}", domain=domain, day=day_text(day))
        return outcome

    async def _deliver(
        self,
        client: httpx.AsyncClient,
        claim: _Claim,
        rows: list[CountRow],
        destinations: list[Destination],
        now: float,
    ) -> _Outcome:
        report = build_report(
            day=claim.day,
            domain=claim.domain,
            organization=self.organization,
            contact=self.contact,
            report_id=claim.report_id,
            rows=rows,
        )
        compressed = compress_report(report)
        events: list[AuditEvent] = []
        mails: list[tuple[queue.NewMessage, str]] = []
        for destination in destinations:
            if destination.scheme == "https":
                if await self._post(client, destination.target, compressed, claim.domain):
                    events.append(self._audit(claim, rows, "sent", "https", len(compressed), now))
                continue
            message = self._queued_report(claim, destination.target, compressed, now)
            mails.append((message, destination.target))
            events.append(
                self._audit(claim, rows, "queued", "mailto", message.size, now, message.queue_id)
            )
        if not events:
            return self._failed(claim, rows, now)
        return _Outcome(SENT, now, tuple(mails), tuple(events))

    def _failed(self, claim: _Claim, rows: list[CountRow], now: float) -> _Outcome:
        if now - claim.first_attempt_at < GIVE_UP_AFTER:
            return _Outcome(RETRY, now + RETRY_AFTER)
        return _Outcome(
            ABANDONED, now, events=(self._audit(claim, rows, "abandoned", None, None, now),)
        )

    async def _post(self, client: httpx.AsyncClient, url: str, body: bytes, domain: str) -> bool:
        try:
            # stream: the status is all we need, whatever the size of the body
            async with client.stream(
                "POST", url, content=body, headers={"Content-Type": MEDIA_TYPE}
            ) as response:
                status = response.status_code
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            event(
                log, "tlsrpt_post_failed", logging.WARNING, domain=domain, error=type(exc).__name__
            )
            return False
        if not 200 <= status < 300:
            event(log, "tlsrpt_post_refused", logging.WARNING, domain=domain, status=status)
            return False
        return True

    def _queued_report(
        self, claim: _Claim, to_address: str, compressed: bytes, now: float
    ) -> queue.NewMessage:
        queue_id = queue.new_queue_id(now)
        content = report_message(
            submitter=self.submitter,
            from_address=self.from_address,
            to_address=to_address,
            domain=claim.domain,
            day=claim.day,
            report_id=claim.report_id,
            compressed=compressed,
            now=now,
        )
        return queue.NewMessage(
            queue_id=queue_id,
            received_at=now,
            listener=LISTENER,
            principal=None,
            client_ip="",
            sender=SENDER,
            size=len(content),
            message_id=None,
            sealed=self.keyring.seal(content, queue_id.encode()),
            # Like a DSN: generated here, never to be answered with a bounce.
            is_dsn=True,
        )

    @staticmethod
    def _audit(
        claim: _Claim,
        rows: list[CountRow],
        result: str,
        scheme: str | None,
        size: int | None,
        now: float,
        queue_id: str | None = None,
    ) -> AuditEvent:
        ok, failed = totals(rows)
        detail = f"domain={claim.domain} day={day_text(claim.day)} successful={ok} failed={failed}"
        if scheme is not None:
            detail += f" rua={scheme}"
        return AuditEvent(
            event="tlsrpt", result=result, queue_id=queue_id, size=size, detail=detail, ts=now
        )
