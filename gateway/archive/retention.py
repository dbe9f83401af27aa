"""Retention schedules: which rule keeps an archived message, and until when.

Pure functions over an `ArchiveEntry` and a `Schedule` (loaded from the
retention rules file by gateway.archive.rules_file). The first rule whose
conditions all hold applies, else the default. Periods are calendar periods
counted from the message's arrival in UTC: `6y` after 2020-02-29 is
2026-02-28 (a month too short for the day keeps its last day).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.archive.records import ArchiveEntry
from gateway.policy.engine import DomainSet

FOREVER = "forever"
_PERIOD = re.compile(r"([1-9][0-9]{0,4})\s*(y|mo|w|d)")
_MONTHS = {"y": 12, "mo": 1}
_DAYS = {"w": 7, "d": 1}
# Fewest days a month or a year can have: a lower bound of any period's length.
_SHORTEST_MONTH_DAYS = 28
DAY = 86400.0


@dataclass(frozen=True)
class Period:
    """A calendar period: months and days, as written (e.g. "6y", "18mo", "90d")."""

    months: int
    days: int
    text: str

    def after(self, ts: float) -> float:
        """The instant this period after `ts` (UTC calendar arithmetic)."""
        return _shifted(ts, self.months, self.days)

    def before(self, ts: float) -> float:
        """The instant this period before `ts`."""
        return _shifted(ts, -self.months, -self.days)

    def at_least_seconds(self) -> float:
        """A lower bound of its length, whatever the months it spans."""
        return (self.months * _SHORTEST_MONTH_DAYS + self.days) * DAY

    def shorter_than(self, other: Period) -> bool:
        """Shorter from the same start (the epoch: the comparison is about whole periods)."""
        return self.after(0.0) < other.after(0.0)


def _shifted(ts: float, months: int, days: int) -> float:
    start = datetime.fromtimestamp(ts, UTC)
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return (start.replace(year=year, month=month, day=day) + timedelta(days=days)).timestamp()


def parse_period(text: str) -> Period | None:
    """`6y`, `18mo`, `2w`, `90d`, or `forever` (None); ValueError with a fix otherwise."""
    written = text.strip().lower()
    if written == FOREVER:
        return None
    match = _PERIOD.fullmatch(written)
    if match is None:
        raise ValueError(f"{text!r} is not a period (write e.g. 6y, 18mo, 2w, 90d, or forever)")
    count, unit = int(match.group(1)), match.group(2)
    return Period(count * _MONTHS.get(unit, 0), count * _DAYS.get(unit, 0), f"{count}{unit}")


def show(period: Period | None) -> str:
    return FOREVER if period is None else period.text


SIX_YEARS = Period(72, 0, "6y")  # HIPAA's 45 CFR 164.316(b)(2): documentation kept six years


@dataclass(frozen=True)
class Match:
    """A rule's conditions; None: not tested. All that are written must hold."""

    categories: frozenset[str] | None = None
    principals: frozenset[str] | None = None  # "none": unauthenticated
    phi: bool | None = None
    sender_domains: DomainSet | None = None
    recipient_domains: DomainSet | None = None  # any recipient's domain

    def holds(self, entry: ArchiveEntry) -> bool:
        if self.categories is not None and entry.category not in self.categories:
            return False
        if self.principals is not None and (entry.principal or "none") not in self.principals:
            return False
        if self.phi is not None and entry.phi != self.phi:
            return False
        if (
            self.sender_domains is not None
            and entry.sender_domain.lower() not in self.sender_domains
        ):
            return False
        return self.recipient_domains is None or any(
            r.rpartition("@")[2].lower() in self.recipient_domains for r in entry.recipients
        )

    def describe(self) -> str:
        """The conditions as a rules file would write them ("every message" for none)."""
        parts = []
        for name, values in (("category", self.categories), ("principal", self.principals)):
            if values is not None:
                parts.append(f"{name}: {', '.join(sorted(values))}")
        if self.phi is not None:
            parts.append(f"phi: {'true' if self.phi else 'false'}")
        for name, domains in (
            ("sender_domain", self.sender_domains),
            ("recipient_domain", self.recipient_domains),
        ):
            if domains is not None:
                written = [*sorted(domains.exact), *sorted("*" + s for s in domains.suffixes)]
                parts.append(f"{name}: {', '.join(written)}")
        return "; ".join(parts) or "every message"


@dataclass(frozen=True)
class Rule:
    name: str
    keep: Period | None  # None: kept forever
    match: Match
    line: int = 0  # where it is written in the rules file (0: not from a file)


DEFAULT_RULE = "default"


@dataclass(frozen=True)
class Schedule:
    """The rules file, compiled: the rules in order, the default last."""

    rules: tuple[Rule, ...]
    default: Rule
    audit_events: Period | None  # None: audit events are kept forever
    short_audit_acknowledged: bool
    source: str

    @property
    def in_order(self) -> tuple[Rule, ...]:
        return (*self.rules, self.default)

    def warnings(self) -> list[str]:
        """What `phigate retention check` points out although the file is valid."""
        found = []
        if self.audit_events is not None and self.audit_events.shorter_than(SIX_YEARS):
            found.append(
                f"audit events are kept {self.audit_events.text}, less than the 6 years HIPAA "
                "asks documentation of safeguards to be kept (acknowledged in the file)"
            )
        return found


def rule_for(schedule: Schedule, entry: ArchiveEntry) -> Rule:
    """The first rule whose conditions hold for `entry`, else the default."""
    return next((r for r in schedule.rules if r.match.holds(entry)), schedule.default)


def due_at(rule: Rule, entry: ArchiveEntry) -> float | None:
    """When `entry`'s content is due for destruction under `rule`; None: never."""
    return None if rule.keep is None else rule.keep.after(entry.received_at)


def may_be_due_before(schedule: Schedule, now: float) -> float | None:
    """Every message due at `now` arrived before this instant (a bound for a scan); None:
    nothing is ever due."""
    periods = [r.keep for r in schedule.in_order if r.keep is not None]
    if not periods:
        return None
    return now - min(p.at_least_seconds() for p in periods)


def due(
    schedule: Schedule, entries: Iterable[ArchiveEntry], now: float
) -> list[tuple[Rule, ArchiveEntry]]:
    """The entries due for destruction at `now`, each with the rule that made it due."""
    found = []
    for entry in entries:
        rule = rule_for(schedule, entry)
        when = due_at(rule, entry)
        if when is not None and when <= now:
            found.append((rule, entry))
    return found
