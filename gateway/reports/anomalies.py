"""Finding anomalies in a report's aggregates, without I/O.

Each finder takes rows already read (gateway.audit.aggregates) and returns
anomalies with their evidence; the methods and thresholds are stated in the
report itself (`methods`) and in docs/reports.md.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.audit.aggregates import DAY, AdminEvent, AuthFailure, PhiDomain
from gateway.config import AnomalyConfig, VolumeAnomalyConfig
from gateway.reports.model import NO_PRINCIPAL, Anomaly, iso

# Scale factors that make MAD and the mean absolute deviation estimate the
# standard deviation of normally distributed counts (Iglewicz and Hoaglin).
MAD_SCALE = 1.4826
MEAN_AD_SCALE = 1.2533
# A baseline that never varies has no spread: one message is the least there is.
MIN_SCALE = 1.0


@dataclass(frozen=True)
class VersionSeen:
    """A policy version decisions were made under, from when, and how many."""

    version: str
    first_ts: float
    decisions: int


def day_text(day: int) -> str:
    return datetime.fromtimestamp(day * DAY, UTC).date().isoformat()


def robust_z(value: float, baseline: Sequence[float]) -> tuple[float, float, float]:
    """(z, median, MAD) of `value` against `baseline`: (value - median) / scale, where
    scale is 1.4826 * MAD, or 1.2533 * the mean absolute deviation when MAD is 0
    (more than half the days alike), and at least one message."""
    median = statistics.median(baseline)
    deviations = [abs(x - median) for x in baseline]
    mad = statistics.median(deviations)
    scale = MAD_SCALE * mad if mad else MEAN_AD_SCALE * statistics.fmean(deviations)
    return (value - median) / max(scale, MIN_SCALE), median, mad


def volume(
    counts: Mapping[str, Mapping[int, int]], days: Iterable[int], options: VolumeAnomalyConfig
) -> list[Anomaly]:
    """Days on which a principal accepted far more than its own baseline: each day
    of the report against the `baseline_days` before it (days without mail count as 0)."""
    found: list[Anomaly] = []
    report_days = list(days)
    for principal, by_day in sorted(counts.items()):
        for day in report_days:
            count = by_day.get(day, 0)
            if count < options.min_messages:
                continue
            baseline = [by_day.get(d, 0) for d in range(day - options.baseline_days, day)]
            active = sum(1 for n in baseline if n)
            if active < options.min_active_days:
                continue
            z, median, mad = robust_z(count, baseline)
            if z < options.threshold:
                continue
            found.append(
                Anomaly(
                    "volume",
                    principal,
                    f"{principal} accepted {count} messages on {day_text(day)}, "
                    f"against a median of {median:g} a day (robust z {z:.1f})",
                    {
                        "day": day_text(day),
                        "messages": count,
                        "baseline_days": options.baseline_days,
                        "baseline_active_days": active,
                        "baseline_median": median,
                        "baseline_mad": mad,
                        "robust_z": round(z, 2),
                        "threshold": options.threshold,
                    },
                )
            )
    return found


def _by_domain(rows: Sequence[PhiDomain]) -> dict[str, list[PhiDomain]]:
    grouped: dict[str, list[PhiDomain]] = defaultdict(list)
    for row in rows:
        grouped[row.domain].append(row)
    return grouped


def _domain_evidence(rows: Sequence[PhiDomain]) -> dict[str, object]:
    return {
        "first_phi_at": iso(min(r.first_ts for r in rows)),
        "phi_messages": sum(r.messages for r in rows),
        "principals": sorted({r.principal or NO_PRINCIPAL for r in rows}),
    }


def new_domains(
    rows: Sequence[PhiDomain],
    seen_before: Collection[str],
    lookback_days: int,
    history_since: float,
) -> list[Anomaly]:
    """Recipient domains PHI was accepted for that no event named in the lookback window.
    `history_since`: when that window, or the trail if it began later, began; the
    evidence says so, since a young trail makes every domain new."""
    found = []
    for domain, group in sorted(_by_domain(rows).items()):
        if domain in seen_before or not domain:
            continue
        evidence = {
            **_domain_evidence(group),
            "lookback_days": lookback_days,
            "looked_back_to": iso(history_since),
        }
        found.append(
            Anomaly(
                "new_domain",
                domain,
                f"PHI accepted for {domain}, a domain not seen in the {lookback_days} days before",
                evidence,
            )
        )
    return found


def consumer_domains(rows: Sequence[PhiDomain], consumer: Collection[str]) -> list[Anomaly]:
    """Recipient domains on the consumer mailbox list that PHI was accepted for."""
    return [
        Anomaly(
            "consumer_domain",
            domain,
            f"PHI accepted for {domain}, a personal mailbox domain",
            _domain_evidence(group),
        )
        for domain, group in sorted(_by_domain(rows).items())
        if domain in consumer
    ]


def auth_bursts(failures: Sequence[AuthFailure], count: int, minutes: float) -> list[Anomaly]:
    """Runs of failed AUTH from one client IP with at least `count` failures within
    any `minutes`-long window; overlapping windows make one burst. Login names
    are counted, never shown: a client may type anything, an address included."""
    window = minutes * 60
    by_ip: dict[str, list[AuthFailure]] = defaultdict(list)
    for failure in failures:
        by_ip[failure.client_ip].append(failure)
    found = []
    for ip, tries in sorted(by_ip.items()):
        tries.sort(key=lambda f: f.ts)
        in_burst = [False] * len(tries)
        start = 0
        for end, failure in enumerate(tries):
            while failure.ts - tries[start].ts > window:
                start += 1
            if end - start + 1 >= count:
                in_burst[start : end + 1] = [True] * (end - start + 1)
        marked = [f for f, member in zip(tries, in_burst, strict=True) if member]
        bursts: list[list[AuthFailure]] = []
        for failure in marked:
            if bursts and failure.ts - bursts[-1][-1].ts <= window:
                bursts[-1].append(failure)
            else:
                bursts.append([failure])
        found += [_auth_burst(ip, burst, count, minutes) for burst in bursts]
    return found


def _auth_burst(ip: str, burst: Sequence[AuthFailure], count: int, minutes: float) -> Anomaly:
    return Anomaly(
        "auth_burst",
        ip or "(unknown)",
        f"{len(burst)} failed AUTH attempts from {ip} between "
        f"{iso(burst[0].ts)} and {iso(burst[-1].ts)}",
        {
            "failures": len(burst),
            "first_at": iso(burst[0].ts),
            "last_at": iso(burst[-1].ts),
            "distinct_logins": len({f.login for f in burst}),
            "lockouts": sum(1 for f in burst if f.locked),
            "rule": f"at least {count} failures within {minutes:g} minutes",
        },
    )


def policy_changes(
    before: str | None, versions: Sequence[VersionSeen], reloads: Sequence[AdminEvent]
) -> list[Anomaly]:
    """Each policy reload asked for (with who asked), and each policy version that
    decisions began to be made under, matched with the reload that brought it."""
    found = []
    reloaded: dict[str, AdminEvent] = {}
    for reload in reloads:
        version = (reload.detail or "").removeprefix("version=")
        reloaded.setdefault(version, reload)
        if reload.result != "ok":
            found.append(
                Anomaly(
                    "policy_change",
                    version,
                    f"policy reload to {version} by {reload.actor or 'unknown'}: {reload.result}",
                    {"at": iso(reload.ts), "actor": reload.actor, "result": reload.result},
                )
            )
    current = before
    for seen in versions:
        if seen.version == current:
            continue
        reload_ = reloaded.get(seen.version)
        actor = reload_.actor if reload_ is not None else ""
        evidence: dict[str, object] = {
            "previous_version": current,
            "first_decision_at": iso(seen.first_ts),
            "decisions": seen.decisions,
            "actor": actor or None,
            "reloaded_at": iso(reload_.ts) if reload_ is not None else None,
        }
        how = (
            f"reloaded by {actor}"
            if reload_ is not None
            else "no reload recorded (a restart with new policy files?)"
        )
        found.append(
            Anomaly(
                "policy_change",
                seen.version,
                f"decisions under policy {seen.version} from {iso(seen.first_ts)}: {how}",
                evidence,
            )
        )
        current = seen.version
    return found


def methods(options: AnomalyConfig) -> dict[str, str]:
    """How each kind of anomaly is found, as the report states it."""
    v = options.volume
    return {
        "volume": (
            f"robust z-score of a principal's accepted messages on a day against its "
            f"previous {v.baseline_days} days (days without mail count as 0): "
            f"(count - median) / (1.4826 x MAD), or 1.2533 x the mean absolute deviation "
            f"when MAD is 0, at least 1; flagged at z >= {v.threshold:g}, on days with at "
            f"least {v.min_messages} messages, for principals with mail on at least "
            f"{v.min_active_days} baseline days"
        ),
        "new_domain": (
            f"a recipient domain PHI was accepted for that no audit event named in the "
            f"{options.new_domain_lookback_days} days before the report's start"
        ),
        "consumer_domain": "PHI accepted for a domain on the personal mailbox list",
        "auth_burst": (
            f"at least {options.auth_burst_failures} failed AUTH attempts from one client IP "
            f"within {options.auth_burst_minutes:g} minutes"
        ),
        "policy_change": (
            "policy reloads (who asked, and how it went) and each new policy version "
            "decisions were made under"
        ),
    }
