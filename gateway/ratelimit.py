"""Sending limits per sender: messages per minute, hour and day, recipients per message and day.

A sender is a `RateKey`: an authenticated principal, a relay network sending
without AUTH, or (for an HTTP API) a token. The authoritative check is
`RateLimiter.charge`, run inside the transaction that stores the message:
it reads the windows' counts and, if the message fits, counts it there, so a
refused message is never counted and a counted one is always stored, on
every process and node of the database alike. It adds two statements to
that transaction and no round trip of its own.

Before that, `RateLimiter.early` answers from what this process last
learned of a sender's counts (no database), so a sender already over a limit
is refused at MAIL or RCPT instead of after sending its whole message. The
counts only grow within a window, so an early refusal is never wrong; what
it misses, the charge catches.

Windows are fixed and UTC-aligned (the minute from :00, the hour from :00,
the day from 00:00 UTC): a breach says exactly when its window ends, which
is when to try again. The first breach of an hourly or daily limit in each
window is an audit event, once for all processes and nodes (`rate_breaches`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Literal

from sqlalchemy import Connection

from gateway import metrics
from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.config import RATE_LIMIT_NAMES, RateLimitsConfig, RateQuota
from gateway.logs import event
from gateway.store import rate_counts
from gateway.store.database import Database
from gateway.store.rate_counts import DAY, HOUR, MINUTE, WINDOWS, Count, window_start

log = logging.getLogger("gateway.ratelimit")

# The window each counted limit is counted in (recipients_per_message is per message).
WINDOW_OF: Mapping[str, int] = {
    "messages_per_minute": MINUTE,
    "messages_per_hour": HOUR,
    "messages_per_day": DAY,
    "recipients_per_day": DAY,
}
WINDOW_WORD: Mapping[int, str] = {MINUTE: "minute", HOUR: "hour", DAY: "day"}
# Quotas whose first breach in a window is an audit event.
AUDITED = frozenset(("messages_per_hour", "messages_per_day", "recipients_per_day"))
# How often a process removes its rows of ended windows (in the accept's transaction).
_PRUNE_SECONDS = 60.0


@dataclass(frozen=True)
class RateKey:
    """Who is counted: a principal by name, a relay network by name, an API token by id."""

    kind: Literal["principal", "network", "token"]
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def who(self) -> str:
        return f'{self.kind} "{self.name}"'


@dataclass(frozen=True)
class Breach:
    """A message that would pass a limit: which one, and how long until it may pass."""

    key: RateKey
    limit: str  # one of RATE_LIMIT_NAMES
    allowed: int
    window_start: int  # 0 for recipients_per_message
    retry_after: int  # seconds; 0 for recipients_per_message (split the message)

    @property
    def text(self) -> str:
        """What the sender is told (an SMTP reply's text, an API error): no address."""
        if self.limit == "recipients_per_message":
            return (
                f"Too many recipients (at most {self.allowed} per message for {self.key.who}); "
                "send the rest in another message"
            )
        noun = "recipients" if self.limit.startswith("recipients") else "messages"
        word = WINDOW_WORD[WINDOW_OF[self.limit]]
        return (
            f"Rate limit reached: at most {self.allowed} {noun} per {word} for {self.key.who}; "
            f"try again in {self.retry_after} seconds"
        )

    def audit_event(self, now: float) -> AuditEvent:
        start = datetime.fromtimestamp(self.window_start, UTC).strftime("%Y-%m-%dT%H:%MZ")
        return AuditEvent(
            event="rate_limit",
            result="exceeded",
            principal=self.key.name if self.key.kind == "principal" else None,
            detail=(
                f"{self.limit}={self.allowed} {WINDOW_WORD[WINDOW_OF[self.limit]]} from "
                f"{start} for {self.key}"
            )[:255],
            ts=now,
        )


def over(
    key: RateKey, quota: RateQuota, counts: Mapping[int, Count], now: float, recipients: int
) -> Breach | None:
    """The limit one more message to `recipients` recipients would pass, given the
    current windows' `counts`; of several, the one that ends last (pure)."""
    worst: Breach | None = None
    for name in RATE_LIMIT_NAMES:
        allowed = quota.limit(name)
        if allowed is None:
            continue
        if name == "recipients_per_message":
            if recipients > allowed:
                return Breach(key, name, allowed, 0, 0)
            continue
        seconds = WINDOW_OF[name]
        count = counts.get(seconds, Count())
        counted = name == "recipients_per_day"
        after = count.recipients + recipients if counted else count.messages + 1
        if after <= allowed:
            continue
        start = window_start(now, seconds)
        retry = max(1, math.ceil(start + seconds - now))
        if worst is None or retry > worst.retry_after:
            worst = Breach(key, name, allowed, start, retry)
    return worst


@dataclass(frozen=True)
class Seen:
    """A sender's counts as a charge in this process last found them."""

    at: float
    counts: Mapping[int, Count]

    def still(self, now: float) -> dict[int, Count]:
        """The counts of the windows that still hold `now` (the others start again at 0)."""
        return {
            seconds: count
            for seconds, count in self.counts.items()
            if window_start(now, seconds) == window_start(self.at, seconds)
        }


@dataclass(frozen=True)
class Charged:
    """What `RateLimiter.charge` found, for `RateLimiter.learn` once it is committed."""

    key: RateKey
    seen: Seen
    breach: Breach | None = None
    audited: bool = False


@dataclass(frozen=True)
class Used:
    """One limit of a sender against what it has used in the current window."""

    limit: str
    allowed: int | None  # None: unlimited
    used: int | None  # None: recipients_per_message, which is not counted over time
    window_seconds: int | None
    resets_in: int | None  # seconds until the window ends


@dataclass
class RateLimiter:
    """The sending limits of `config`, counted in the database (one per process)."""

    config: RateLimitsConfig
    clock: Callable[[], float] = time.time
    _seen: dict[RateKey, Seen] = field(default_factory=dict)
    _audited: set[tuple[RateKey, str, int]] = field(default_factory=set)
    _next_prune: float = 0.0

    def quota(self, key: RateKey) -> RateQuota:
        if key.kind == "network":
            return self.config.for_network(key.name)
        if key.kind == "principal":
            return self.config.for_principal(key.name)
        return self.config.defaults

    def limited(self, key: RateKey) -> bool:
        quota = self.quota(key)
        return any(quota.limit(name) is not None for name in RATE_LIMIT_NAMES)

    def usage(self, conn: Connection, key: RateKey, now: float) -> list[Used]:
        """Each limit of `key` against its current window's count (`phigate principal usage`)."""
        quota = self.quota(key)
        counts = rate_counts.current(conn, str(key), now)
        used = []
        for name in RATE_LIMIT_NAMES:
            seconds = WINDOW_OF.get(name)
            if seconds is None:
                used.append(Used(name, quota.limit(name), None, None, None))
                continue
            count = counts[seconds]
            value = count.recipients if name.startswith("recipients") else count.messages
            ends = window_start(now, seconds) + seconds
            used.append(Used(name, quota.limit(name), value, seconds, math.ceil(ends - now)))
        return used

    def early(self, key: RateKey, recipients: int) -> Breach | None:
        """The limit a message to `recipients` recipients would pass, as far as this
        process knows without asking the database: at MAIL (0) and at each RCPT."""
        now = self.clock()
        seen = self._seen.get(key)
        counts = seen.still(now) if seen is not None else {}
        return over(key, self.quota(key), counts, now, recipients)

    def charge(self, conn: Connection, key: RateKey, recipients: int, now: float) -> Charged:
        """In the transaction that stores a message: the limit it would pass, if any
        (then nothing is counted, and the caller must store nothing), else count it.

        The first breach of an audited quota in its window is appended to the trail
        here, once for every process and node. May run again if the writer redoes
        its batch: it keeps nothing of its own until `learn`.
        """
        if not self.limited(key):
            return Charged(key, Seen(now, {}))
        if now >= self._next_prune:
            rate_counts.prune(conn, now)
            self._next_prune = now + _PRUNE_SECONDS
        counts = rate_counts.current(conn, str(key), now)
        breach = over(key, self.quota(key), counts, now, recipients)
        if breach is None:
            rate_counts.add(conn, str(key), recipients, now)
            added = {seconds: counts[seconds].plus(1, recipients) for seconds in WINDOWS}
            return Charged(key, Seen(now, added))
        audited = breach.limit in AUDITED and rate_counts.first_breach(
            conn, str(key), breach.limit, breach.window_start, now
        )
        if audited:
            trail.append(conn, [breach.audit_event(now)])
        return Charged(key, Seen(now, counts), breach, audited)

    def learn(self, charged: Charged) -> None:
        """After the charge's transaction committed: what it found serves `early`."""
        self._seen[charged.key] = charged.seen
        breach = charged.breach
        if breach is not None:
            self._note(breach)
            if charged.audited:
                self._audited.add((breach.key, breach.limit, breach.window_start))
        if len(self._seen) > 10_000:  # many senders: forget those of ended days
            now = self.clock()
            self._seen = {k: s for k, s in self._seen.items() if s.still(now)}

    async def refused_early(self, db: Database, breach: Breach) -> None:
        """Count a refusal `early` found; the first of an audited quota in this
        process per window asks the database whether it is the first anywhere."""
        self._note(breach)
        mark = (breach.key, breach.limit, breach.window_start)
        if breach.limit not in AUDITED or mark in self._audited:
            return
        self._audited.add(mark)
        try:
            await db.write(partial(_audit_first, breach=breach, now=self.clock()))
        except Exception as exc:  # the refusal stands; a later one audits it
            self._audited.discard(mark)
            event(log, "rate_limit_not_audited", logging.ERROR, error=type(exc).__name__)

    def _note(self, breach: Breach) -> None:
        metrics.RATE_LIMITED.labels(breach.limit).inc()


def _audit_first(conn: Connection, breach: Breach, now: float) -> None:
    if rate_counts.first_breach(conn, str(breach.key), breach.limit, breach.window_start, now):
        trail.append(conn, [breach.audit_event(now)])
