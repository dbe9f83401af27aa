"""Intake: parse -> inspect -> decide -> seal -> store, then the 250.

Each stage is a plain function of what the earlier ones produced. PHI
detection and the policy engine will replace `inspect` and `decide`; today
every recipient is delivered by the configured route.
"""

from __future__ import annotations

import email.policy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.utils import formatdate

from sqlalchemy import Connection

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.config import ReceivedHeaderConfig
from gateway.logs import event
from gateway.store import queue
from gateway.store.database import Database
from gateway.store.keyring import Keyring

log = logging.getLogger("gateway.intake")

_PARSER = BytesParser(policy=email.policy.compat32)


@dataclass(frozen=True)
class Submission:
    """What the listener knows once DATA has arrived; addresses already normalised."""

    listener: str
    principal: str | None
    client_ip: str
    helo: str | None
    tls: bool
    authenticated: bool
    sender: str
    recipients: tuple[str, ...]
    content: bytes


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None
    message: Message


@dataclass(frozen=True)
class Findings:
    """What inspection found (types and counts only). Filled by the PHI detector."""

    phi: bool = False


@dataclass(frozen=True)
class RecipientDecision:
    recipient: str
    action: str  # deliver (later also: reject, hold)
    route: str


@dataclass(frozen=True)
class Reply:
    code: int
    text: str
    queue_id: str | None = None

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


def parse(content: bytes) -> ParsedMessage:
    message = _PARSER.parsebytes(content)
    raw_id = message.get("Message-ID")
    message_id = " ".join(str(raw_id).split())[:998] if raw_id else None
    return ParsedMessage(message_id, message)


def inspect(_parsed: ParsedMessage) -> Findings:
    return Findings()


def decide(submission: Submission, _findings: Findings) -> list[RecipientDecision]:
    return [RecipientDecision(r, "deliver", queue.DEFAULT_ROUTE) for r in submission.recipients]


def received_header(
    submission: Submission, queue_id: str, hostname: str, options: ReceivedHeaderConfig, now: float
) -> bytes:
    """A trace header that reveals the client only as far as the admin allows."""
    protocol = "ESMTP" + ("S" if submission.tls else "") + ("A" if submission.authenticated else "")
    origin = []
    if options.include_helo and submission.helo:
        origin.append(submission.helo)
    if options.include_client_ip:
        origin.append(f"([{submission.client_ip}])")
    source = f"from {' '.join(origin)}\r\n\t" if origin else ""
    stamp = formatdate(now, localtime=True)
    return (
        f"Received: {source}by {hostname} (phigate) with {protocol} id {queue_id};\r\n\t{stamp}\r\n"
    ).encode("ascii", "replace")


class Intake:
    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        hostname: str,
        received: ReceivedHeaderConfig,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.hostname = hostname
        self.received = received
        self.on_queued = on_queued

    async def accept(self, submission: Submission) -> Reply:
        now = time.time()
        queue_id = queue.new_queue_id(now)
        try:
            parsed = parse(submission.content)
            findings = inspect(parsed)
            decisions = decide(submission, findings)
        except Exception:  # fail closed: an inspection error is never a pass
            event(log, "intake_failed", logging.ERROR, queue_id=queue_id, stage="inspect")
            return Reply(451, "4.3.0 Message could not be inspected; try again later")
        content = received_header(submission, queue_id, self.hostname, self.received, now)
        content += submission.content
        sealed = self.keyring.seal(content, queue_id.encode())
        record = queue.NewMessage(
            queue_id=queue_id,
            received_at=now,
            listener=submission.listener,
            principal=submission.principal,
            client_ip=submission.client_ip,
            sender=submission.sender,
            size=len(submission.content),
            message_id=parsed.message_id,
            sealed=sealed,
        )
        new_jobs = [queue.NewJob(d.recipient, d.route) for d in decisions if d.action == "deliver"]
        accepted = AuditEvent(
            event="accepted",
            result="queued",
            queue_id=queue_id,
            principal=submission.principal,
            client_ip=submission.client_ip,
            sender=submission.sender,
            recipients=submission.recipients,
            size=len(submission.content),
            code=250,
            detail=f"message-id={parsed.message_id[:200]}" if parsed.message_id else None,
        )

        def store(conn: Connection) -> None:
            queue.insert_message(conn, record, new_jobs)
            trail.append(conn, [accepted])

        try:
            await self.db.write(store)
        except Exception:
            event(log, "store_failed", logging.ERROR, queue_id=queue_id)
            return Reply(451, "4.3.0 Message could not be stored; try again later")
        event(
            log,
            "accepted",
            queue_id=queue_id,
            principal=submission.principal,
            client_ip=submission.client_ip,
            recipients=len(submission.recipients),
            size=len(submission.content),
        )
        self.on_queued()
        return Reply(250, f"2.0.0 Ok: queued as {queue_id}", queue_id)
