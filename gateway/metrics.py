"""Prometheus metrics: what every stage counts, and nothing that could identify a person.

Labels carry only words from fixed, small vocabularies: listener names, reply
codes, PHI types, policy rule ids, delivery modes, results. Never an address,
subject, file name, host name or value found in a message (docs/metrics.md).

With `metrics.enabled`, `serve` calls `configure(DIR)` before forking: each
server process then keeps its values in its own memory-mapped files in DIR
(prometheus-client's multiprocess mode), and a scrape, answered by any
process, sums every process's files. The metrics themselves are made on
first use (module `__getattr__`), so where values live is decided by
`configure`, whatever imported prometheus-client first. Without it (metrics
off, tests that build parts in-process) they are plain in-process values.
Stages write `metrics.NAME`, never `from gateway.metrics import NAME`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Latencies from a millisecond (a quick 250) to minutes (a slow remote server).
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# From acceptance to delivery: seconds on a good day, days when a server is down.
_QUEUE_SECONDS = (0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 14400, 86400, 432000)

# Made on first use (see `configure`); these names are what the stages count with.
CONNECTIONS: Counter
PROXY_HEADERS: Counter
WEB_REFUSED: Counter
AUTH: Counter
REFUSALS: Counter
RATE_LIMITED: Counter
ACCEPTED: Counter
INTAKE_SECONDS: Histogram
IN_FLOW_WAITS: Counter
LARGE_MESSAGE_WAITS: Counter
PHI_FINDINGS: Counter
DECISIONS: Counter
DELIVERIES: Counter
DELIVERY_SECONDS: Histogram
ATTEMPT_SECONDS: Histogram
TLS_SESSIONS: Counter
DKIM_SIGNATURES: Counter
SMIME_OPERATIONS: Counter
PORTAL_COPIES: Counter
AUDIT_FORWARDED: Counter
WEBHOOKS: Counter


def _define() -> dict[str, Counter | Histogram]:
    return {
        "CONNECTIONS": Counter(
            "phigate_smtp_connections", "SMTP connections accepted, by listener.", ["listener"]
        ),
        "PROXY_HEADERS": Counter(
            "phigate_smtp_proxy_headers",
            "Connections to listeners behind a load balancer, by listener and what their PROXY"
            " protocol header came to.",
            ["listener", "result"],
        ),
        "WEB_REFUSED": Counter(
            "phigate_web_connections_refused",
            "Connections to the web app (or the metrics listener) closed at a connection limit"
            " before their TLS handshake, by server and limit.",
            ["server", "limit"],
        ),
        "AUTH": Counter("phigate_smtp_auth", "SMTP AUTH attempts by result.", ["result"]),
        "REFUSALS": Counter(
            "phigate_smtp_refusals",
            "4xx/5xx SMTP replies by reply code and enhanced status code.",
            ["code", "status"],
        ),
        "RATE_LIMITED": Counter(
            "phigate_rate_limited",
            "Messages and recipients refused for a sender's sending limit (rate_limits), by"
            " limit: messages_per_minute, _hour, _day, recipients_per_message, _day.",
            ["limit"],
        ),
        "ACCEPTED": Counter(
            "phigate_messages_accepted",
            "Messages accepted (250 after DATA), by listener; portal replies as listener portal.",
            ["listener"],
        ),
        "INTAKE_SECONDS": Histogram(
            "phigate_intake_seconds",
            "From the end of DATA to the 250: parse, inspect, decide, seal and commit.",
            buckets=_SECONDS,
        ),
        "PHI_FINDINGS": Counter(
            "phigate_phi_findings",
            "PHI detector findings in accepted or refused mail, by type.",
            ["type"],
        ),
        "DECISIONS": Counter(
            "phigate_policy_decisions",
            "Policy decisions per recipient, by rule id (defaults: no rule matched) and action.",
            ["rule", "action"],
        ),
        "IN_FLOW_WAITS": Counter(
            "phigate_in_flow_waits",
            "Messages that waited for delivery to catch up (delivery.in_flow_delay), by how"
            " the wait ended: a delivery finished, or the delay ran out.",
            ["ended_by"],
        ),
        "LARGE_MESSAGE_WAITS": Counter(
            "phigate_large_message_waits",
            "Large messages that waited for a turn to be read (limits.max_large_messages).",
        ),
        "DELIVERIES": Counter(
            "phigate_deliveries",
            "Delivery attempt outcomes per recipient, by mode and result.",
            ["mode", "result"],
        ),
        "DELIVERY_SECONDS": Histogram(
            "phigate_delivery_seconds",
            "From acceptance to delivery, per delivered recipient, by mode.",
            ["mode"],
            buckets=_QUEUE_SECONDS,
        ),
        "ATTEMPT_SECONDS": Histogram(
            "phigate_delivery_attempt_seconds",
            "One delivery attempt of one message to all its claimed recipients.",
            buckets=_SECONDS,
        ),
        "TLS_SESSIONS": Counter(
            "phigate_delivery_tls_sessions",
            "Outgoing SMTP sessions by how the next hop was authenticated.",
            ["verification"],
        ),
        "DKIM_SIGNATURES": Counter(
            "phigate_dkim_signatures", "DKIM signatures made, by algorithm.", ["algorithm"]
        ),
        "SMIME_OPERATIONS": Counter(
            "phigate_smime_operations", "S/MIME signatures and encryptions made.", ["operation"]
        ),
        "PORTAL_COPIES": Counter(
            "phigate_portal_copies",
            "Portal copies stored, and first viewed by their recipient.",
            ["event"],
        ),
        "AUDIT_FORWARDED": Counter(
            "phigate_audit_forwarded_events",
            "Audit events sent to the syslog collector (repeats after a lost connection included).",
        ),
        "WEBHOOKS": Counter(
            "phigate_webhook_deliveries",
            "Webhook requests by event kind and result: sent (answered 2xx), failed (to be "
            "retried), dead (dead-lettered).",
            ["kind", "result"],
        ),
    }


def __getattr__(name: str) -> object:
    """The metrics are made when a stage first counts, after `configure`."""
    if name in _NAMES:
        globals().update(_define())
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_NAMES = frozenset(
    {
        "CONNECTIONS",
        "PROXY_HEADERS",
        "WEB_REFUSED",
        "AUTH",
        "REFUSALS",
        "RATE_LIMITED",
        "ACCEPTED",
        "INTAKE_SECONDS",
        "PHI_FINDINGS",
        "DECISIONS",
        "DELIVERIES",
        "DELIVERY_SECONDS",
        "ATTEMPT_SECONDS",
        "TLS_SESSIONS",
        "DKIM_SIGNATURES",
        "SMIME_OPERATIONS",
        "PORTAL_COPIES",
        "AUDIT_FORWARDED",
        "WEBHOOKS",
    }
)


def configure(directory: Path | None) -> None:
    """Keep values in `directory`, shared by the processes (None: in this process only).

    Called by `serve` before the processes fork and before anything counts:
    prometheus-client picks where values live when a metric is made.
    """
    if "CONNECTIONS" in globals():
        raise RuntimeError("metrics.configure() must come before the first metric is used")
    if directory is None:
        os.environ.pop(MULTIPROC_ENV, None)
        values.ValueClass = values.MutexValue
    else:
        os.environ[MULTIPROC_ENV] = str(directory)  # where MultiProcessValue opens its files
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


class _QueueGauges:
    """The queue as the store sees it at this scrape (read before, passed in)."""

    def __init__(self, jobs: Mapping[str, int], oldest_age: float) -> None:
        self.jobs = jobs
        self.oldest_age = oldest_age

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "phigate_queue_jobs",
            "Jobs in the queue by state (one job per recipient).",
            None,
            ["state"],
        )
        for state, count in sorted(self.jobs.items()):
            depth.add_metric([state], count)
        yield depth
        yield GaugeMetricFamily(
            "phigate_queue_oldest_message_age_seconds",
            "Age of the oldest message with a job still queued, active or held (0: none).",
            value=self.oldest_age,
        )


class _ForwarderGauges:
    """How far the audit forwarder's cursor is behind the trail, at this scrape."""

    def __init__(self, events: int, seconds: float) -> None:
        self.events = events
        self.seconds = seconds

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "phigate_audit_forwarder_lag_events",
            "Audit events not yet confirmed sent to the syslog collector.",
            value=self.events,
        )
        yield GaugeMetricFamily(
            "phigate_audit_forwarder_lag_seconds",
            "Age of the oldest audit event not yet confirmed sent (0: none).",
            value=self.seconds,
        )


def exposition(
    jobs: Mapping[str, int], oldest_age: float, forwarder_lag: tuple[int, float] | None = None
) -> bytes:
    """The text format of every process's values, the queue gauges and, with the
    forwarder on, its lag (events, seconds). Reads files."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, os.environ[MULTIPROC_ENV])  # type: ignore[no-untyped-call]
    registry.register(_QueueGauges(jobs, oldest_age))
    if forwarder_lag is not None:
        registry.register(_ForwarderGauges(*forwarder_lag))
    return generate_latest(registry)
