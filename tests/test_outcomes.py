"""The outcome planner: every transition a delivery result can make, without I/O.

`outcomes.plan` is pure (results + jobs + message + clock + delivery config ->
what to record), so it is tested like a state machine: a table of (job,
result, age of the message) -> (state, next attempt, recorded status), then
the rules that span recipients (mixed results, who gets a DSN).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from gateway.bounce import FailedRecipient
from gateway.config import DeliveryConfig
from gateway.delivery import outcomes
from gateway.delivery.client import MODE_UNAVAILABLE, RecipientResult, TlsEvidence
from gateway.delivery.worker import crashed
from gateway.store import queue

NOW = 1_800_000_000.0
HOUR = 3600.0
LIFETIME = 5 * 86400.0
SCHEDULE = [60.0, 300.0, 900.0]
CONFIG = DeliveryConfig(retry_schedule=SCHEDULE, retry_jitter=0.1, max_queue_lifetime=LIFETIME)
RCPT = "patient@b.example"


def midpoint(low: float, high: float) -> float:
    """A jitter draw of exactly 1: the schedule's own delays."""
    return (low + high) / 2


def message(
    age: float = HOUR, sender: str = "clinic@a.example", is_dsn: bool = False
) -> queue.MessageForDelivery:
    return queue.MessageForDelivery(
        queue_id="Q1",
        sender=sender,
        received_at=NOW - age,
        message_id="<m1@a.example>",
        principal="ehr",
        is_dsn=is_dsn,
        sealed=None,
    )


def job(recipient: str = RCPT, attempts: int = 0, job_id: int = 1) -> queue.ClaimedJob:
    return queue.ClaimedJob(job_id, "Q1", recipient, ("standard",), attempts)


def result(
    code: int | None,
    status: str,
    reply: str = "reply",
    recipient: str = RCPT,
    *,
    mode: str = "standard",
    remote: str | None = "mx.b.example",
    tls: TlsEvidence | None = None,
    note: str = "",
) -> RecipientResult:
    return RecipientResult(recipient, code, status, reply, remote, mode, tls, note)


def plan_one(res: RecipientResult, attempts: int = 0, age: float = HOUR) -> outcomes.JobOutcome:
    plan = outcomes.plan(message(age), [job(res.recipient, attempts)], [res], NOW, CONFIG, midpoint)
    [outcome] = plan.outcomes
    return outcome


@dataclass(frozen=True)
class Case:
    name: str
    result: RecipientResult
    attempts: int  # attempts made before this one
    age: float  # seconds since the message was received
    state: str
    delay: float | None  # seconds until the next attempt, deferred only
    status: str  # as recorded on the job and in the audit trail
    event: str


CASES = [
    Case("delivered", result(250, "2.0.0"), 0, HOUR, queue.DELIVERED, None, "2.0.0", "delivered"),
    Case(
        "delivered after many tries",
        result(250, "2.0.0"),
        6,
        HOUR,
        queue.DELIVERED,
        None,
        "2.0.0",
        "delivered",
    ),
    Case(
        "delivered although expired",
        result(250, "2.0.0"),
        6,
        LIFETIME + HOUR,
        queue.DELIVERED,
        None,
        "2.0.0",
        "delivered",
    ),
    Case(
        "first attempt deferred",
        result(451, "4.3.0"),
        0,
        0.0,
        queue.QUEUED,
        60,
        "4.3.0",
        "deferred",
    ),
    Case(
        "second attempt deferred",
        result(451, "4.3.0"),
        1,
        HOUR,
        queue.QUEUED,
        300,
        "4.3.0",
        "deferred",
    ),
    Case(
        "third attempt deferred",
        result(421, "4.4.2"),
        2,
        HOUR,
        queue.QUEUED,
        900,
        "4.4.2",
        "deferred",
    ),
    Case(
        "past the schedule: its last delay",
        result(451, "4.3.0"),
        9,
        HOUR,
        queue.QUEUED,
        900,
        "4.3.0",
        "deferred",
    ),
    Case(
        "no reply (connection failed) deferred",
        result(None, "4.4.1", "connection refused"),
        0,
        HOUR,
        queue.QUEUED,
        60,
        "4.4.1",
        "deferred",
    ),
    Case(
        "mode unavailable deferred",
        result(None, MODE_UNAVAILABLE, "no verified TLS"),
        0,
        HOUR,
        queue.QUEUED,
        60,
        MODE_UNAVAILABLE,
        "deferred",
    ),
    Case(
        "5xx bounces at once", result(550, "5.1.1"), 0, 0.0, queue.BOUNCED, None, "5.1.1", "bounced"
    ),
    Case(
        "consent withdrawn bounces",
        result(550, "5.7.1", "not sent: consent revoked while queued", mode="consent", remote=None),
        0,
        HOUR,
        queue.BOUNCED,
        None,
        "5.7.1",
        "bounced",
    ),
    Case(
        "4xx at the lifetime bounces as expired",
        result(451, "4.3.0"),
        12,
        LIFETIME,
        queue.BOUNCED,
        None,
        "4.4.7",
        "bounced",
    ),
    Case(
        "4xx just inside the lifetime is deferred",
        result(451, "4.3.0"),
        12,
        LIFETIME - 1,
        queue.QUEUED,
        900,
        "4.3.0",
        "deferred",
    ),
    Case(
        "no reply past the lifetime bounces as expired",
        result(None, "4.4.1", "connection refused"),
        12,
        LIFETIME + HOUR,
        queue.BOUNCED,
        None,
        "4.4.7",
        "bounced",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_transition(case: Case) -> None:
    outcome = plan_one(case.result, case.attempts, case.age)
    assert outcome.state == case.state
    assert outcome.attempts_done == case.attempts + 1  # every attempt counts
    if case.delay is None:
        assert outcome.next_attempt_at is None
    else:
        assert outcome.next_attempt_at == pytest.approx(NOW + case.delay)
    assert outcome.result.status == outcome.audit.result == case.status
    assert outcome.result.code == outcome.audit.code == case.result.code
    assert outcome.audit.event == case.event
    assert (outcome.audit.queue_id, outcome.audit.principal, outcome.audit.sender) == (
        "Q1",
        "ehr",
        "clinic@a.example",
    )
    assert outcome.audit.recipients == (RCPT,) and outcome.audit.ts == NOW


def test_expiry_keeps_the_last_error_and_lists_the_recipient_in_the_dsn() -> None:
    plan = outcomes.plan(
        message(LIFETIME),
        [job(attempts=12)],
        [result(451, "4.3.0", "mailbox busy")],
        NOW,
        CONFIG,
        midpoint,
    )
    [outcome] = plan.outcomes
    assert outcome.result.reply == "message expired in queue; last error: mailbox busy"
    assert outcome.audit.detail == (
        "mode=standard mx=mx.b.example: message expired in queue; last error: mailbox busy"
    )
    assert plan.dsn == (
        FailedRecipient(
            recipient=RCPT,
            status="4.4.7",
            diagnostic="smtp; 451 message expired in queue; last error: mailbox busy",
            remote_mta="mx.b.example",
            last_attempt=datetime.fromtimestamp(NOW, UTC),
        ),
    )


@pytest.mark.parametrize(
    ("res", "status", "diagnostic"),
    [
        (result(550, "5.1.1", "user unknown"), "5.1.1", "smtp; 550 user unknown"),
        # A reply without a usable enhanced code still bounces as a failure.
        (result(554, "2.0.0", "odd server"), "5.0.0", "smtp; 554 odd server"),
        # No SMTP reply at all (expired after connection failures): the reason alone.
        (
            result(None, "4.4.1", "connection refused"),
            "4.4.7",
            "message expired in queue; last error: connection refused",
        ),
    ],
)
def test_dsn_lines(res: RecipientResult, status: str, diagnostic: str) -> None:
    plan = outcomes.plan(message(LIFETIME), [job()], [res], NOW, CONFIG, midpoint)
    [failed] = plan.dsn
    assert (failed.status, failed.diagnostic) == (status, diagnostic)


@pytest.mark.parametrize(
    ("sender", "is_dsn", "owed"),
    [
        ("clinic@a.example", False, True),
        ("", False, False),  # null sender: never bounced (RFC 5321 §6.1)
        ("<>", False, False),
        (" <> ", False, False),
        ("clinic@a.example", True, False),  # a DSN that bounces gets no DSN
    ],
)
def test_dsn_only_when_the_sender_can_take_one(sender: str, is_dsn: bool, owed: bool) -> None:
    plan = outcomes.plan(
        message(sender=sender, is_dsn=is_dsn),
        [job()],
        [result(550, "5.1.1")],
        NOW,
        CONFIG,
        midpoint,
    )
    [outcome] = plan.outcomes
    assert outcome.state == queue.BOUNCED  # bounced and audited either way
    assert bool(plan.dsn) is owed


@pytest.mark.parametrize(
    "res", [result(250, "2.0.0"), result(451, "4.3.0")], ids=["delivered", "deferred"]
)
def test_no_dsn_without_a_bounce(res: RecipientResult) -> None:
    plan = outcomes.plan(message(), [job()], [res], NOW, CONFIG, midpoint)
    assert plan.dsn == ()


def test_mixed_recipients_each_get_their_own_outcome_in_order() -> None:
    rcpts = ["a@b.example", "c@d.example", "e@f.example", "g@h.example"]
    jobs = [job(r, attempts=n, job_id=n + 1) for n, r in enumerate(rcpts)]
    results = [
        result(250, "2.0.0", recipient=rcpts[0]),
        result(451, "4.3.0", recipient=rcpts[1]),
        result(550, "5.1.1", "no such user", recipient=rcpts[2]),
        result(552, "5.2.2", "mailbox full", recipient=rcpts[3]),
    ]
    plan = outcomes.plan(message(), jobs, results, NOW, CONFIG, midpoint)
    assert [(o.job.id, o.state) for o in plan.outcomes] == [
        (1, queue.DELIVERED),
        (2, queue.QUEUED),
        (3, queue.BOUNCED),
        (4, queue.BOUNCED),
    ]
    assert plan.outcomes[1].next_attempt_at == pytest.approx(NOW + 300)  # its second attempt
    # One DSN for the message, listing exactly the bounced recipients.
    assert [f.recipient for f in plan.dsn] == rcpts[2:]


def test_results_follow_the_jobs_of_their_recipient_not_their_position() -> None:
    jobs = [job("a@b.example", 0, 7), job("c@d.example", 3, 8)]
    results = [
        result(451, "4.3.0", recipient="c@d.example"),
        result(250, "2.0.0", recipient="a@b.example"),
    ]
    plan = outcomes.plan(message(), jobs, results, NOW, CONFIG, midpoint)
    assert [(o.job.id, o.attempts_done, o.state) for o in plan.outcomes] == [
        (8, 4, queue.QUEUED),
        (7, 1, queue.DELIVERED),
    ]


def test_a_crash_is_a_counted_deferral_that_names_only_the_error_type() -> None:
    [res] = crashed("Q1", [RCPT], RuntimeError("Subject: lab results for Jane Doe"))
    outcome = plan_one(res, attempts=2)
    assert (outcome.state, outcome.attempts_done) == (queue.QUEUED, 3)
    assert outcome.next_attempt_at == pytest.approx(NOW + 900)
    assert outcome.audit.detail == (
        "mode=standard: delivery failed with an internal error (RuntimeError)"
    )
    assert "Jane" not in repr(outcome)


def test_a_crash_past_the_lifetime_bounces() -> None:
    [res] = crashed("Q1", [RCPT], RuntimeError("boom"))
    outcome = plan_one(res, attempts=40, age=LIFETIME)
    assert (outcome.state, outcome.result.status) == (queue.BOUNCED, "4.4.7")


def replace_config(**changes: object) -> DeliveryConfig:
    return CONFIG.model_copy(update=changes)


@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("attempts", [0, 1, 2, 5])
def test_jitter_stays_within_its_bounds(jitter: float, attempts: int) -> None:
    config = replace_config(retry_jitter=jitter)
    base = SCHEDULE[min(attempts, len(SCHEDULE) - 1)]
    draws: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        draws.append((low, high))
        return low

    low = outcomes.plan(
        message(), [job(attempts=attempts)], [result(451, "4.3.0")], NOW, config, record
    )
    assert draws == [(1 - jitter, 1 + jitter)]
    assert low.outcomes[0].next_attempt_at == pytest.approx(NOW + base * (1 - jitter))
    high = outcomes.plan(
        message(), [job(attempts=attempts)], [result(451, "4.3.0")], NOW, config, lambda lo, hi: hi
    )
    assert high.outcomes[0].next_attempt_at == pytest.approx(NOW + base * (1 + jitter))
    # And with the real draw, every delay lands inside the same bounds.
    rng = random.Random(attempts)
    for _ in range(200):
        drawn = outcomes.plan(
            message(), [job(attempts=attempts)], [result(451, "4.3.0")], NOW, config, rng.uniform
        )
        delay = drawn.outcomes[0].next_attempt_at
        assert delay is not None
        assert base * (1 - jitter) <= delay - NOW <= base * (1 + jitter)


def test_audit_detail_carries_mode_tls_note_and_host_and_fits_its_column() -> None:
    tls = TlsEvidence("TLSv1.3", "TLS_AES_256_GCM_SHA384", "ab" * 32, "pkix")
    res = result(250, "2.0.0", "ok " + "x" * 400, mode="smime", tls=tls, note="smime=aes256-gcm")
    detail = outcomes.audit_detail(res)
    assert detail.startswith(
        f"mode=smime tls=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 cert=sha256:{'ab' * 32} "
        "verify=pkix smime=aes256-gcm mx=mx.b.example: ok xxx"
    )
    assert len(detail) == 255
    assert outcomes.audit_detail(replace(res, tls=None, note="", remote_host=None, reply="ok")) == (
        "mode=smime: ok"
    )


def test_planning_is_pure() -> None:
    """Same inputs, same plan; nothing read from the clock or a global generator."""
    args = (message(), [job()], [result(451, "4.3.0")], NOW, CONFIG, midpoint)
    assert outcomes.plan(*args) == outcomes.plan(*args)
