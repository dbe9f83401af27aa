"""Building a compliance report from the trail's aggregates, without I/O.

`Aggregates` holds what gateway.reports.gather read (rows of
gateway.audit.aggregates); `build` turns them into a `Report`: each section's
numbers, and the anomalies found by gateway.reports.anomalies.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar

from gateway.audit import aggregates as agg
from gateway.config import AnomalyConfig
from gateway.consent.states import WITHDRAWN
from gateway.policy.model import CATEGORIES
from gateway.reports import anomalies
from gateway.reports.model import (
    NO_PRINCIPAL,
    ActorChange,
    Consent,
    ConsentCount,
    DayVolume,
    DomainTls,
    ModeCount,
    PrincipalVolume,
    ReasonCount,
    Report,
    RuleCount,
    StageCount,
)
from gateway.reports.statuses import meaning
from gateway.store.audit_facets import fields

REFUSING_ACTIONS = ("reject", "hold")
VERIFIED = frozenset(("pkix", "mta-sts", "dane-ee", "dane-ta", "pin"))
DANE = frozenset(("dane-ee", "dane-ta"))
TLS_FAILED = "4.7.5"  # the mode's protection could not be had (gateway.delivery.client)
CONSENT_MODE = "consent"  # results marketing recorded at delivery (gateway.delivery.marketing)
CONSENT_UNREAD = "4.3.0"  # ... when consent could not be read
POLICY_RELOAD = "policy_reload"
CONSENT_EVENTS = "consent_"  # the registry's events (gateway.consent.registry)
K = TypeVar("K")


@dataclass(frozen=True)
class Aggregates:
    span: agg.Span
    decisions: list[agg.DecisionGroup]
    daily: list[agg.DailyCount]  # in the span
    before: list[agg.DailyCount]  # in the volume baseline's days before the span
    attempts: list[agg.AttemptGroup]
    tls: list[agg.DomainTls]
    smtp_refusals: list[agg.RefusalGroup]
    phi_domains: list[agg.PhiDomain]
    seen_before: set[str]  # of the PHI domains, those named in the lookback window
    trail_since: float | None  # the trail's first event (None: empty)
    auth_failures: list[agg.AuthFailure]
    reloads: list[agg.AdminEvent]
    version_before: str | None
    consent_events: list[agg.AdminEvent]
    changes: list[agg.ActorCount]


def report_days(span: agg.Span) -> range:
    """The UTC day numbers the span touches."""
    return range(int(span.since // agg.DAY), math.ceil(span.until / agg.DAY))


def _category(detail: dict[str, str]) -> str:
    return detail.get("category", "unknown").partition("(")[0] or "unknown"


def volume(
    decisions: Sequence[agg.DecisionGroup], daily: Sequence[agg.DailyCount]
) -> tuple[list[PrincipalVolume], list[str]]:
    messages: Counter[str] = Counter()
    for row in daily:
        messages[row.principal or NO_PRINCIPAL] += row.messages
    by_category: dict[str, Counter[str]] = defaultdict(Counter)
    for group in decisions:
        category = _category(fields(group.detail))
        by_category[group.principal or NO_PRINCIPAL][category] += group.decisions
    found = {c for counts in by_category.values() for c in counts}
    categories = [c for c in CATEGORIES if c in found] + sorted(found - set(CATEGORIES))
    rows = [
        PrincipalVolume(p, messages[p], {c: by_category[p][c] for c in categories})
        for p in set(messages) | set(by_category)
    ]
    rows.sort(key=lambda r: (-r.messages, -sum(r.recipients_by_category.values()), r.principal))
    return rows, categories


def daily_volume(daily: Sequence[agg.DailyCount], span: agg.Span) -> list[DayVolume]:
    per_day: Counter[int] = Counter()
    for row in daily:
        per_day[row.day] += row.messages
    return [DayVolume(anomalies.day_text(d), per_day[d]) for d in report_days(span)]


def phi_by_mode(attempts: Sequence[agg.AttemptGroup]) -> list[ModeCount]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for group in attempts:
        if group.phi:
            counts[group.mode or "(not yet indexed)"][group.event] += group.count
    return [
        ModeCount(mode, c["delivered"], c["deferred"], c["bounced"])
        for mode, c in sorted(counts.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    ]


def refusals_by_rule(decisions: Sequence[agg.DecisionGroup]) -> list[RuleCount]:
    counts: Counter[tuple[str, str]] = Counter()
    for group in decisions:
        if group.action in REFUSING_ACTIONS:
            rule = fields(group.detail).get("rule", "defaults")
            counts[(rule, group.action)] += group.decisions
    return [RuleCount(rule, action, n) for (rule, action), n in _most(counts)]


def smtp_refusals(rows: Sequence[agg.RefusalGroup]) -> list[StageCount]:
    counts: Counter[tuple[str, int | None]] = Counter()
    for row in rows:
        counts[(row.stage, row.code)] += row.count
    return [StageCount(stage, code, n) for (stage, code), n in _most(counts)]


def failures(attempts: Sequence[agg.AttemptGroup]) -> list[ReasonCount]:
    counts: Counter[tuple[str, str, int | None]] = Counter()
    for group in attempts:
        if group.event != "delivered":
            counts[(group.event, group.status, group.code)] += group.count
    return [
        ReasonCount(event, status, code, meaning(status), n)
        for (event, status, code), n in _most(counts)
    ]


def tls_by_domain(rows: Sequence[agg.DomainTls]) -> list[DomainTls]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        c = counts[row.domain]
        c["attempts"] += row.count
        tls = row.tls or "none"
        c["verified"] += row.count if tls in VERIFIED else 0
        c["dane"] += row.count if tls in DANE else 0
        c["mta_sts"] += row.count if tls == "mta-sts" else 0
        c["unverified"] += row.count if tls == "unverified" else 0
        c["no_tls"] += row.count if tls == "none" else 0
        c["failures"] += row.count if row.status == TLS_FAILED else 0
    found = [
        DomainTls(
            domain,
            c["attempts"],
            c["verified"],
            c["dane"],
            c["mta_sts"],
            c["unverified"],
            c["no_tls"],
            c["failures"],
        )
        for domain, c in counts.items()
    ]
    found.sort(key=lambda d: (-d.attempts, d.domain))
    return found


def consent(
    decisions: Sequence[agg.DecisionGroup],
    attempts: Sequence[agg.AttemptGroup],
    registry: Sequence[agg.AdminEvent],
) -> Consent:
    refused: Counter[str] = Counter()
    for group in decisions:
        state = fields(group.detail).get("consent", "")
        if group.action == "reject" and state in WITHDRAWN:
            refused[f"refused by policy, consent {state}"] += group.decisions
    at_delivery = [a for a in attempts if a.mode == CONSENT_MODE]
    changes: Counter[str] = Counter()
    for change in registry:
        words = fields(change.detail or "")
        what = change.event.removeprefix(CONSENT_EVENTS)
        purpose, source = words.get("purpose"), words.get("source")
        changes[" ".join(w for w in (what, purpose, source and f"via {source}") if w)] += 1
    return Consent(
        [ConsentCount(what, n) for what, n in _most(refused)],
        sum(a.count for a in at_delivery if a.event == "bounced"),
        sum(a.count for a in at_delivery if a.status == CONSENT_UNREAD),
        [ConsentCount(what, n) for what, n in _most(changes)],
    )


def versions(decisions: Sequence[agg.DecisionGroup]) -> list[anomalies.VersionSeen]:
    """Each policy version decisions were made under (their detail's `policy=`), first first."""
    first: dict[str, float] = {}
    count: Counter[str] = Counter()
    for group in decisions:
        version = fields(group.detail).get("policy")
        if version:
            first[version] = min(first.get(version, group.first_ts), group.first_ts)
            count[version] += group.decisions
    return sorted(
        (anomalies.VersionSeen(v, first[v], count[v]) for v in first), key=lambda s: s.first_ts
    )


def _most(counts: Counter[K]) -> list[tuple[K, int]]:
    """Most frequent first, then by key (as text) for a stable order."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))


def build(
    data: Aggregates, options: AnomalyConfig, consumer: Collection[str], now: float
) -> Report:
    span = data.span
    principals, categories = volume(data.decisions, data.daily)
    lookback = span.since - options.new_domain_lookback_days * agg.DAY
    per_principal: dict[str, Counter[int]] = defaultdict(Counter)
    for row in (*data.before, *data.daily):  # a day the span starts in may be in both
        per_principal[row.principal or NO_PRINCIPAL][row.day] += row.messages
    found = [
        *anomalies.volume(per_principal, report_days(span), options.volume),
        *anomalies.new_domains(
            data.phi_domains,
            data.seen_before,
            options.new_domain_lookback_days,
            max(lookback, data.trail_since or lookback),
        ),
        *anomalies.consumer_domains(data.phi_domains, consumer),
        *anomalies.auth_bursts(
            data.auth_failures, options.auth_burst_failures, options.auth_burst_minutes
        ),
        *anomalies.policy_changes(data.version_before, versions(data.decisions), data.reloads),
    ]
    return Report(
        since=span.since,
        until=span.until,
        generated_at=now,
        volume=principals,
        categories=categories,
        daily=daily_volume(data.daily, span),
        phi_by_mode=phi_by_mode(data.attempts),
        refusals_by_rule=refusals_by_rule(data.decisions),
        smtp_refusals=smtp_refusals(data.smtp_refusals),
        failures=failures(data.attempts),
        tls=tls_by_domain(data.tls),
        consent=consent(data.decisions, data.attempts, data.consent_events),
        anomalies=found,
        changes=[
            ActorChange(c.event, c.result, c.actor, c.count)
            for c in sorted(data.changes, key=lambda c: (-c.count, c.event, c.actor))
        ],
        methods=anomalies.methods(options),
    )
