"""A compliance report as data: what every renderer (text, JSON, HTML) shows.

Metadata only, like the trail it is read from: principals, categories, rule
ids, modes, status codes, recipient domains, client IPs and admin actors;
never a recipient's address, a subject or a login name a client typed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

NO_PRINCIPAL = "(none)"  # mail from a relay network, without AUTH
ANOMALIES_PER_KIND = 50  # shown in text and HTML; JSON carries them all


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def shown(value: object) -> str:
    """An evidence value as a person reads it: lists joined, None as "-"."""
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return "-" if value is None else str(value)


@dataclass(frozen=True)
class PrincipalVolume:
    principal: str
    messages: int  # accepted
    recipients_by_category: dict[str, int]  # decisions (one per recipient), refused ones too


@dataclass(frozen=True)
class DayVolume:
    day: str  # YYYY-MM-DD (UTC)
    messages: int


@dataclass(frozen=True)
class ModeCount:
    """Delivery outcomes of PHI messages' recipients through one mode."""

    mode: str
    delivered: int
    deferred: int
    bounced: int


@dataclass(frozen=True)
class RuleCount:
    rule: str
    action: str  # reject or hold
    recipients: int


@dataclass(frozen=True)
class StageCount:
    stage: str  # the SMTP stage a refusal happened at
    code: int | None
    count: int


@dataclass(frozen=True)
class ReasonCount:
    event: str  # deferred or bounced
    status: str  # enhanced status code
    code: int | None  # SMTP reply code, None: no reply (connection or TLS failure)
    meaning: str  # what the status code stands for (RFC 3463)
    count: int


@dataclass(frozen=True)
class DomainTls:
    """Attempts through a next hop for one recipient domain, by how TLS went."""

    domain: str
    attempts: int
    verified: int  # pkix, mta-sts, dane-ee, dane-ta or pin
    dane: int
    mta_sts: int
    unverified: int  # TLS without verification (opportunistic)
    no_tls: int
    failures: int  # the required protection could not be had (status 4.7.5)


@dataclass(frozen=True)
class ConsentCount:
    what: str
    count: int


@dataclass(frozen=True)
class Consent:
    refused_at_intake: list[ConsentCount]  # by the consent state they were refused under
    stopped_at_delivery: int  # marketing not sent: consent withdrawn while queued
    waited_at_delivery: int  # consent could not be read; retried later
    registry: list[ConsentCount]  # "opted_out marketing via unsubscribe", ...


@dataclass(frozen=True)
class Anomaly:
    kind: str  # volume, new_domain, consumer_domain, auth_burst, policy_change
    subject: str  # a principal, a domain, a client IP or a policy version
    summary: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class ActorChange:
    event: str
    result: str
    actor: str
    count: int


@dataclass(frozen=True)
class Report:
    since: float
    until: float
    generated_at: float
    volume: list[PrincipalVolume]
    categories: list[str]  # the columns of `volume`, in order
    daily: list[DayVolume]
    phi_by_mode: list[ModeCount]
    refusals_by_rule: list[RuleCount]
    smtp_refusals: list[StageCount]
    failures: list[ReasonCount]
    tls: list[DomainTls]
    consent: Consent
    anomalies: list[Anomaly]
    changes: list[ActorChange]
    methods: dict[str, str] = field(default_factory=dict)  # how each anomaly is found

    def anomalies_shown(self, per_kind: int = ANOMALIES_PER_KIND) -> tuple[list[Anomaly], str]:
        """The first `per_kind` anomalies of each kind, and a note of those left out
        ("" when none were): in the first weeks after installation every domain is new."""
        seen: dict[str, int] = {}
        shown = []
        for a in self.anomalies:
            seen[a.kind] = seen.get(a.kind, 0) + 1
            if seen[a.kind] <= per_kind:
                shown.append(a)
        left = {kind: n - per_kind for kind, n in seen.items() if n > per_kind}
        note = ", ".join(f"{n} more {kind}" for kind, n in left.items())
        return shown, (f"... and {note} (the JSON report lists all)" if note else "")

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"], data["until"] = iso(self.since), iso(self.until)
        data["generated_at"] = iso(self.generated_at)
        return data
