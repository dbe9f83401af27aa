"""A seeded audit trail for report tests: a month of known events whose report
numbers the tests state, with canaries where a report must never look."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.audit.trail import AuditEvent
from gateway.delivery.client import RecipientResult, TlsEvidence
from gateway.delivery.outcomes import audit_detail

DAY = 86400.0
REPORT_DAY = datetime(2026, 11, 30, tzinfo=UTC).timestamp()
CANARY_LOCAL = "canary-local-q7x"
CANARY_REPLY = "canary-remote-reply-4kd Pat Example"
CANARY_LOGIN = "canary-login-9zz@gmail.com"
CANARIES = (CANARY_LOCAL, CANARY_REPLY, CANARY_LOGIN, "canary")


class Trail:
    """Builds the events of a seeded trail, each message with its own queue id."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.n = 0

    def message(
        self,
        principal: str,
        ts: float,
        rcpt_domain: str,
        *,
        category: str = "treatment",
        phi: bool = True,
        action: str = "deliver",
        rule: str = "defaults",
        consent: str = "not-needed",
        version: str = "v1",
    ) -> tuple[str, str]:
        self.n += 1
        q = f"Q{self.n:019d}"
        rcpt = f"{CANARY_LOCAL}{self.n}@{rcpt_domain}"
        detail = (
            f"policy={version} category={category}(cat-{category}) rule={rule} "
            f"consent={consent} via=tls phi={'yes' if phi else 'no'}"
        )
        self.events.append(
            AuditEvent(
                "policy",
                action,
                queue_id=q,
                principal=principal,
                client_ip="192.0.2.7",
                sender=f"{CANARY_LOCAL}@clinic.example",
                recipients=(rcpt,),
                detail=detail,
                ts=ts,
            )
        )
        if action != "reject":
            self.events.append(
                AuditEvent(
                    "accepted",
                    "queued",
                    queue_id=q,
                    principal=principal,
                    client_ip="192.0.2.7",
                    sender=f"{CANARY_LOCAL}@clinic.example",
                    recipients=(rcpt,),
                    size=1000,
                    code=250,
                    ts=ts,
                )
            )
        return q, rcpt

    def attempt(
        self,
        q: str,
        rcpt: str,
        ts: float,
        *,
        mode: str = "tls",
        verified: str | None = "pkix",
        code: int | None = 250,
        status: str = "2.0.0",
    ) -> None:
        tls = (
            TlsEvidence("TLSv1.3", "TLS_AES_256_GCM_SHA384", "ab" * 32, verified)
            if verified
            else None
        )
        result = RecipientResult(
            rcpt, code, status, f"{code} {CANARY_REPLY} <{rcpt}>", "mx.example", mode, tls
        )
        event = (
            "delivered"
            if status.startswith("2")
            else "bounced"
            if status.startswith("5")
            else "deferred"
        )
        self.events.append(
            AuditEvent(
                event,
                status,
                queue_id=q,
                principal=None,
                recipients=(rcpt,),
                code=code,
                detail=audit_detail(result),
                ts=ts,
            )
        )


def seeded(report_day: float = REPORT_DAY) -> list[AuditEvent]:
    """The events of the 28 days before `report_day` and of that day."""
    t = Trail()
    first = report_day - 28 * DAY
    # Baseline: ehr1 sends 9, 10 or 11 a day, billing 18 to 22, to partner.example.
    for d in range(28):
        day = first + d * DAY
        for i in range(9 + d % 3):
            t.message("ehr1", day + 3600 + i, "partner.example", version="v1")
        for i in range(18 + d % 5):
            t.message("billing", day + 7200 + i, "partner.example", category="payment", phi=False)
    day = report_day
    t.events.append(
        AuditEvent("policy_reload", "ok", detail="version=v2", actor="cli:alice", ts=day + 100)
    )
    # The report day: ehr1 sends 100 (ten times its usual), billing 20 (its usual).
    for i in range(97):
        q, rcpt = t.message("ehr1", day + 1000 + i, "partner.example", version="v2")
        if i < 90:
            t.attempt(q, rcpt, day + 2000 + i)
        elif i < 95:
            t.attempt(q, rcpt, day + 2000 + i, verified="dane-ee")
        elif i < 97:
            t.attempt(q, rcpt, day + 2000 + i, verified=None, code=451, status="4.4.1")
    for _ in range(2):
        q, rcpt = t.message("ehr1", day + 1200, "Gmail.com", version="v2")
        t.attempt(q, rcpt, day + 2200, mode="portal", verified=None)
    q, rcpt = t.message("ehr1", day + 1300, "newclinic.example", version="v2")
    t.attempt(q, rcpt, day + 2300, verified=None, code=None, status="4.7.5")
    for i in range(20):
        q, rcpt = t.message(
            "billing",
            day + 3000 + i,
            "partner.example",
            category="payment",
            phi=False,
            version="v2",
        )
        t.attempt(q, rcpt, day + 4000 + i, mode="standard", verified="no")
    q, rcpt = t.message(
        "billing", day + 3100, "partner.example", category="payment", phi=False, version="v2"
    )
    t.attempt(q, rcpt, day + 4100, mode="standard", verified="no", code=550, status="5.1.1")
    # Refused and held by policy (a refused PHI message to yahoo.com is no PHI sent).
    for _ in range(3):
        t.message(
            "ehr1", day + 5000, "yahoo.com", rule="block-consumer", action="reject", version="v2"
        )
    for _ in range(2):
        t.message(
            "ehr1", day + 5100, "partner.example", rule="hold-large", action="hold", version="v2"
        )
    # Consent: refused under a withdrawn consent; stopped at delivery; registry changes.
    for _ in range(2):
        t.message(
            "crm",
            day + 6000,
            "partner.example",
            category="marketing",
            phi=False,
            rule="marketing-needs-consent",
            action="reject",
            consent="opted_out",
            version="v2",
        )
    q, rcpt = t.message(
        "crm", day + 6100, "partner.example", category="marketing", phi=False, version="v2"
    )
    t.events.append(
        AuditEvent(
            "bounced",
            "5.7.1",
            queue_id=q,
            recipients=(rcpt,),
            code=550,
            ts=day + 6200,
            detail=audit_detail(
                RecipientResult(
                    rcpt, 550, "5.7.1", "not sent: consent opted out while queued", None, "consent"
                )
            ),
        )
    )
    for n in range(3):
        t.events.append(
            AuditEvent(
                "consent_opted_out",
                "ok",
                recipients=(f"{CANARY_LOCAL}{n}@partner.example",),
                detail=f"purpose=marketing source=unsubscribe actor=unsubscribe record={n}",
                actor="unsubscribe",
                ts=day + 7000 + n,
            )
        )
    t.events.append(
        AuditEvent(
            "consent_granted",
            "ok",
            recipients=(f"{CANARY_LOCAL}@partner.example",),
            detail="purpose=marketing source=ehr actor=api:ehr record=9",
            actor="api:ehr",
            ts=day + 7100,
        )
    )
    # SMTP-level refusals, and AUTH failures: a burst from one address, a few from another.
    for _ in range(3):
        t.events.append(
            AuditEvent(
                "refused",
                "rcpt",
                client_ip="192.0.2.50",
                code=550,
                detail=f"5.7.1 relay denied for {CANARY_LOCAL}@else.example",
                ts=day + 8000,
            )
        )
    t.events.append(
        AuditEvent(
            "refused", "protocol", client_ip="192.0.2.50", code=500, detail="5.5.2 ?", ts=day + 8001
        )
    )
    for i in range(12):
        t.events.append(
            AuditEvent(
                "auth",
                "locked" if i == 11 else "failed",
                principal=f"{CANARY_LOGIN}{i % 4}",
                client_ip="203.0.113.9",
                code=535,
                ts=day + 9000 + 20 * i,
            )
        )
    for i in range(3):
        t.events.append(
            AuditEvent(
                "auth",
                "failed",
                principal="ehr1",
                client_ip="198.51.100.4",
                code=535,
                ts=day + 9000 + i,
            )
        )
    t.events.append(
        AuditEvent("principal", "disabled", principal="crm", actor="cli:bob", ts=day + 9500)
    )
    return t.events
