"""SMTP TLS reporting (RFC 8460): counting TLS sessions, and the daily report they make.

The delivery worker records every TLS session attempt with a recipient domain's
MX host. Sessions are counted per UTC day, policy domain, policy, MX host,
sending and receiving IP and result: exactly what a report holds, so no
address, message id or content is ever stored here. A policy's strings are
kept once, under a hash of its type and strings.

Sending the reports is `gateway.delivery.tlsrpt_send`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, delete, exists, select

from gateway.store.schema import tls_policies, tls_session_counts
from gateway.store.upsert import dialect_insert

__all__ = [
    "DAY",
    "RESULT_TYPES",
    "SUCCESS",
    "CountRow",
    "PolicyType",
    "TlsSession",
    "build_report",
    "day_start",
    "day_text",
    "delete_counts",
    "load_counts",
    "record_sessions",
    "sweep_counts",
    "totals",
]

DAY = 86400
PolicyType = Literal["sts", "tlsa", "no-policy-found"]
# RFC 8460 §4.3 (the IANA "STARTTLS Validation Result Types" registry).
RESULT_TYPES = frozenset(
    {
        "starttls-not-supported",
        "certificate-host-mismatch",
        "certificate-expired",
        "certificate-not-trusted",
        "validation-failure",
        "tlsa-invalid",
        "dnssec-invalid",
        "dane-required",
        "sts-policy-fetch-error",
        "sts-policy-invalid",
        "sts-webpki-invalid",
    }
)
SUCCESS = "success"  # the result column of successful sessions
_GENERAL_FAILURE = "validation-failure"
_NAME_MAX = 255
_IP_MAX = 64


@dataclass(frozen=True)
class TlsSession:
    """One TLS session attempt with an MX host, as RFC 8460 reports it."""

    policy_domain: str  # recipient domain (lower-case A-label)
    policy_type: PolicyType
    policy_strings: tuple[str, ...]  # STS policy lines, or TLSA records as text
    mx_host: str
    receiving_ip: str | None
    failure: str | None  # None = success; else an RFC 8460 result-type
    sending_ip: str | None = None  # our address on that connection, when known


def day_start(ts: float) -> int:
    """UNIX seconds at 00:00 UTC of the day `ts` falls in."""
    return int(ts // DAY) * DAY


def policy_hash(policy_type: str, strings: Sequence[str]) -> str:
    payload = json.dumps([policy_type, list(strings)], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


@cache
def _upserts(dialect: str) -> tuple[Any, Any]:
    """(policy upsert, counter upsert), built once per dialect: recording runs for
    every delivery attempt, and building a statement costs more than running it."""
    policy = dialect_insert(dialect, tls_policies)
    policy_upsert = policy.on_conflict_do_update(
        index_elements=[tls_policies.c.policy_hash],
        set_={"last_seen": policy.excluded.last_seen},
    )
    counts = dialect_insert(dialect, tls_session_counts)
    counts_upsert = counts.on_conflict_do_update(
        index_elements=list(tls_session_counts.primary_key.columns),
        set_={"sessions": tls_session_counts.c.sessions + counts.excluded.sessions},
    )
    return policy_upsert, counts_upsert


def _name(text: str) -> str:
    return text.strip().rstrip(".").lower()[:_NAME_MAX]


def _ip(text: str | None) -> str:
    """The address in canonical form; "" when unknown or not an address."""
    if not text:
        return ""
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))[:_IP_MAX]
    except ValueError:
        return ""


def _result(failure: str | None) -> str:
    if failure is None:
        return SUCCESS
    # A result type this code does not know still counts as a failure: the
    # report must never show a failed session as successful.
    return failure if failure in RESULT_TYPES else _GENERAL_FAILURE


def record_sessions(conn: Connection, sessions: Sequence[TlsSession], now: float) -> None:
    """Add `sessions` to the counters of the UTC day of `now`, in the caller's transaction.

    One upsert per distinct counter. Safe under the group-committing writer:
    it re-runs an operation only after its transaction was rolled back, so an
    increment is never applied twice.
    """
    if not sessions:
        return
    day = day_start(now)
    policies: dict[str, dict[str, object]] = {}
    counts: Counter[tuple[str, str, str, str, str, str]] = Counter()
    for session in sessions:
        digest = policy_hash(session.policy_type, session.policy_strings)
        policies.setdefault(
            digest,
            {
                "policy_hash": digest,
                "policy_type": session.policy_type,
                "policy_strings": json.dumps(list(session.policy_strings)),
                "last_seen": now,
            },
        )
        key = (
            _name(session.policy_domain),
            digest,
            _name(session.mx_host),
            _ip(session.sending_ip),
            _ip(session.receiving_ip),
            _result(session.failure),
        )
        counts[key] += 1
    policy_upsert, counts_upsert = _upserts(conn.dialect.name)
    # Sorted, so that concurrent writers (PostgreSQL, several nodes) lock rows
    # in the same order and cannot deadlock.
    conn.execute(policy_upsert, [policies[digest] for digest in sorted(policies)])
    conn.execute(
        counts_upsert,
        [
            {
                "day": day,
                "policy_domain": domain,
                "policy_hash": digest,
                "mx_host": mx_host,
                "sending_ip": sending_ip,
                "receiving_ip": receiving_ip,
                "result": result,
                "sessions": n,
            }
            for (domain, digest, mx_host, sending_ip, receiving_ip, result), n in sorted(
                counts.items()
            )
        ],
    )


# --- reading the counters of a finished day -------------------------------------


@dataclass(frozen=True)
class CountRow:
    """One counter of a day and policy domain, with its policy."""

    policy_type: str
    policy_strings: tuple[str, ...]
    mx_host: str
    sending_ip: str  # "" when not known
    receiving_ip: str  # "" when not known
    result: str  # SUCCESS or a result type
    sessions: int


_LOAD_COUNTS = (
    select(
        tls_policies.c.policy_type,
        tls_policies.c.policy_strings,
        tls_session_counts.c.mx_host,
        tls_session_counts.c.sending_ip,
        tls_session_counts.c.receiving_ip,
        tls_session_counts.c.result,
        tls_session_counts.c.sessions,
    )
    .join(tls_policies, tls_policies.c.policy_hash == tls_session_counts.c.policy_hash)
    .where(
        tls_session_counts.c.day == bindparam("day"),
        tls_session_counts.c.policy_domain == bindparam("domain"),
    )
)


def load_counts(conn: Connection, day: int, domain: str) -> list[CountRow]:
    return [
        CountRow(
            row.policy_type,
            tuple(json.loads(row.policy_strings)),
            row.mx_host,
            row.sending_ip,
            row.receiving_ip,
            row.result,
            row.sessions,
        )
        for row in conn.execute(_LOAD_COUNTS, {"day": day, "domain": domain})
    ]


def delete_counts(conn: Connection, day: int, domain: str) -> None:
    conn.execute(
        delete(tls_session_counts).where(
            tls_session_counts.c.day == day, tls_session_counts.c.policy_domain == domain
        )
    )


def sweep_counts(conn: Connection, before_day: int) -> int:
    """Delete counters of days before `before_day` (never reported), and policies
    no counter uses that were not seen since; returns the counters deleted."""
    deleted = conn.execute(
        delete(tls_session_counts).where(tls_session_counts.c.day < before_day)
    ).rowcount
    # last_seen guards a policy that a concurrent writer is recording right now.
    conn.execute(
        delete(tls_policies).where(
            tls_policies.c.last_seen < before_day,
            ~exists().where(tls_session_counts.c.policy_hash == tls_policies.c.policy_hash),
        )
    )
    return int(deleted)


# --- the report ---------------------------------------------------------------


def totals(rows: Sequence[CountRow]) -> tuple[int, int]:
    """(successful sessions, failed sessions)."""
    ok = sum(r.sessions for r in rows if r.result == SUCCESS)
    return ok, sum(r.sessions for r in rows) - ok


def day_text(day: int) -> str:
    """The UTC date of `day` as YYYY-MM-DD."""
    return datetime.fromtimestamp(day, UTC).strftime("%Y-%m-%d")


def _mx_hosts(policy_type: str, strings: tuple[str, ...], rows: list[CountRow]) -> list[str]:
    """RFC 8460 §4.4 mx-host: the policy's MX patterns (sts), or the MX hosts
    whose TLSA records these are (tlsa); none without a policy."""
    if policy_type == "sts":
        keyed = (line.partition(":") for line in strings)
        return [value.strip() for key, _, value in keyed if key.strip() == "mx"]
    if policy_type == "tlsa":
        return sorted({r.mx_host for r in rows})
    return []


def _failure_detail(row: CountRow) -> dict[str, object]:
    detail: dict[str, object] = {"result-type": row.result}
    if row.sending_ip:
        detail["sending-mta-ip"] = row.sending_ip
    detail["receiving-mx-hostname"] = row.mx_host
    if row.receiving_ip:
        detail["receiving-ip"] = row.receiving_ip
    detail["failed-session-count"] = row.sessions
    return detail


def build_report(
    *,
    day: int,
    domain: str,
    organization: str,
    contact: str,
    report_id: str,
    rows: Sequence[CountRow],
) -> dict[str, Any]:
    """The RFC 8460 §4 report (as JSON data) for one policy domain and UTC day."""
    by_policy: dict[tuple[str, tuple[str, ...]], list[CountRow]] = defaultdict(list)
    for row in rows:
        by_policy[(row.policy_type, row.policy_strings)].append(row)
    policies = []
    for (policy_type, strings), group in sorted(by_policy.items()):
        policy: dict[str, object] = {"policy-type": policy_type}
        if strings:
            policy["policy-string"] = list(strings)
        policy["policy-domain"] = domain
        mx_hosts = _mx_hosts(policy_type, strings, group)
        if mx_hosts:
            policy["mx-host"] = mx_hosts
        ok, failed = totals(group)
        entry: dict[str, object] = {
            "policy": policy,
            "summary": {
                "total-successful-session-count": ok,
                "total-failure-session-count": failed,
            },
        }
        failures = sorted(
            (r for r in group if r.result != SUCCESS),
            key=lambda r: (r.result, r.mx_host, r.receiving_ip, r.sending_ip),
        )
        if failures:
            entry["failure-details"] = [_failure_detail(r) for r in failures]
        policies.append(entry)
    date = day_text(day)
    return {
        "organization-name": organization,
        "date-range": {
            "start-datetime": f"{date}T00:00:00Z",
            "end-datetime": f"{date}T23:59:59Z",
        },
        "contact-info": contact,
        "report-id": report_id,
        "policies": policies,
    }
