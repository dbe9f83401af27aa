"""Reading what a report needs from the store: the I/O edge of gateway.reports.build."""

from __future__ import annotations

import time
from collections.abc import Collection

from sqlalchemy import Connection

from gateway.audit import aggregates as agg
from gateway.config import AnomalyConfig
from gateway.reports.build import CONSENT_EVENTS, POLICY_RELOAD, Aggregates, build
from gateway.reports.model import Report


def read(conn: Connection, span: agg.Span, options: AnomalyConfig) -> Aggregates:
    """Every aggregate of the span (and of the windows before it the anomalies compare with)."""
    baseline = agg.Span(span.since - options.volume.baseline_days * agg.DAY, span.since)
    phi_domains = agg.phi_domains(conn, span)
    lookback = span.since - options.new_domain_lookback_days * agg.DAY
    domains = sorted({row.domain for row in phi_domains})
    return Aggregates(
        span=span,
        decisions=agg.decision_groups(conn, span),
        daily=agg.accepted_per_day(conn, span),
        before=agg.accepted_per_day(conn, baseline),
        attempts=agg.attempts(conn, span),
        tls=agg.tls_by_domain(conn, span),
        smtp_refusals=agg.smtp_refusals(conn, span),
        phi_domains=phi_domains,
        seen_before=agg.domains_seen(conn, domains, lookback, span.since),
        trail_since=agg.first_ts(conn),
        auth_failures=agg.auth_failures(conn, span),
        reloads=agg.listed(conn, span, kinds=(POLICY_RELOAD,)),
        version_before=agg.version_before(conn, span.since),
        consent_events=agg.listed(conn, span, prefix=CONSENT_EVENTS),
        changes=agg.changes_by_actor(conn, span, CONSENT_EVENTS),
    )


def report(
    conn: Connection,
    span: agg.Span,
    options: AnomalyConfig,
    consumer: Collection[str],
    now: float | None = None,
) -> Report:
    """The report of `span`, read in one transaction."""
    return build(read(conn, span, options), options, consumer, time.time() if now is None else now)
