"""What a delivery attempt comes to, decided without I/O.

`plan` takes the attempt's results, the claimed jobs, the message, the clock
and the delivery configuration, and says for each job what to record:
delivered; deferred, with the time of its next attempt (the retry schedule,
jittered); or bounced (a 5xx, or no success before max_queue_lifetime), with
its audit event; and which recipients the sender's DSN must list. The worker
commits the plan in one transaction.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.audit.trail import AuditEvent
from gateway.bounce import FailedRecipient, is_null_sender
from gateway.config import DeliveryConfig
from gateway.delivery.client import RecipientResult
from gateway.store import queue

# The audit trail's detail column.
_DETAIL_CHARS = 255
_EVENTS = {queue.DELIVERED: "delivered", queue.BOUNCED: "bounced", queue.QUEUED: "deferred"}

# Draws a number between two bounds: random.uniform, or a fixed choice in tests.
Uniform = Callable[[float, float], float]


@dataclass(frozen=True)
class JobOutcome:
    """What to record for one job."""

    job: queue.ClaimedJob
    result: RecipientResult  # as recorded (an expired deferral reads 4.4.7)
    state: str  # queue.DELIVERED, queue.BOUNCED or queue.QUEUED (deferred)
    next_attempt_at: float | None  # deferred only
    audit: AuditEvent

    @property
    def attempts_done(self) -> int:
        return self.job.attempts + 1


@dataclass(frozen=True)
class Plan:
    outcomes: tuple[JobOutcome, ...]
    # The recipients the sender's DSN lists; empty when no DSN is owed (nothing
    # bounced, the message is itself a DSN, or its sender is null).
    dsn: tuple[FailedRecipient, ...]


def audit_detail(result: RecipientResult) -> str:
    """Metadata of one delivery attempt for the audit trail: mode, TLS evidence,
    S/MIME details, next hop and its reply (shortened to fit)."""
    parts = [f"mode={result.mode}"]
    if result.tls is not None:
        parts.append(result.tls.text())
    if result.note:
        parts.append(result.note)
    if result.remote_host:
        parts.append(f"mx={result.remote_host}")
    head = " ".join(parts)
    return f"{head}: {result.reply}"[:_DETAIL_CHARS]


def backoff(
    schedule: Sequence[float], attempts_done: int, jitter: float, uniform: Uniform = random.uniform
) -> float:
    """Seconds until the next attempt: the schedule's entry for the attempts made so
    far (its last entry from then on), spread by ±`jitter` so retries do not bunch."""
    base = schedule[min(max(attempts_done - 1, 0), len(schedule) - 1)]
    return base * uniform(1 - jitter, 1 + jitter)


def _expired(result: RecipientResult) -> RecipientResult:
    return RecipientResult(
        result.recipient,
        result.code,
        "4.4.7",
        f"message expired in queue; last error: {result.reply}",
        result.remote_host,
    )


def _failed(result: RecipientResult, now: float) -> FailedRecipient:
    return FailedRecipient(
        recipient=result.recipient,
        status=result.status if result.status[0] in "45" else "5.0.0",
        diagnostic=f"smtp; {result.code} {result.reply}" if result.code else result.reply,
        remote_mta=result.remote_host,
        last_attempt=datetime.fromtimestamp(now, UTC),
    )


def plan(
    message: queue.MessageForDelivery,
    jobs: Sequence[queue.ClaimedJob],
    results: Sequence[RecipientResult],
    now: float,
    config: DeliveryConfig,
    uniform: Uniform = random.uniform,
) -> Plan:
    """The outcome of each result, in order (one result per job's recipient)."""
    jobs_by_rcpt = {job.recipient: job for job in jobs}
    expired = now - message.received_at >= config.max_queue_lifetime
    outcomes: list[JobOutcome] = []
    bounced: list[FailedRecipient] = []
    for result in results:
        job = jobs_by_rcpt[result.recipient]
        next_at: float | None = None
        if result.delivered:
            state = queue.DELIVERED
        elif result.permanent or expired:
            if not result.permanent:
                result = _expired(result)
            state = queue.BOUNCED
            bounced.append(_failed(result, now))
        else:
            state = queue.QUEUED
            delay = backoff(config.retry_schedule, job.attempts + 1, config.retry_jitter, uniform)
            next_at = now + delay
        audit = AuditEvent(
            event=_EVENTS[state],
            result=result.status,
            queue_id=message.queue_id,
            principal=message.principal,
            sender=message.sender,
            recipients=(result.recipient,),
            code=result.code,
            detail=audit_detail(result),
            ts=now,
        )
        outcomes.append(JobOutcome(job, result, state, next_at, audit))
    owed = bounced and not message.is_dsn and not is_null_sender(message.sender)
    return Plan(tuple(outcomes), tuple(bounced) if owed else ())
