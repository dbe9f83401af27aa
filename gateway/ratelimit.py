"""Sending limits per sender: messages per minute, hour and day, recipients per message and day.

A sender is a `RateKey`: an authenticated principal, a relay network sending
without AUTH, or (for an HTTP API) a token. The authoritative check is
`RateLimiter.charge`, run inside the transaction that stores the message:
it reads the windows' counts and, if the message fits, counts it there, so a
refused message is never counted and a counted one is always stored, on
every process and node of the database alike. It adds no round trip of its
own: a batch of messages the writer commits together reads each sender's
windows once and writes all its counts in one statement
(gateway.store.rate_counts).

Before that, `RateLimiter.early` answers from what this process last
learned of a sender's counts (no database), so a sender already over a limit
is refused at MAIL or RCPT instead of after sending its whole message. The
counts only grow within a window, so an early refusal is never wrong; what
it misses, the charge catches.

An HTTP API sends through intake as the listener does: a `Submission` whose
`rate_key` is `RateKey("token", TOKEN_NAME)`; a breach's `retry_after` is its
`Retry-After` for a 429, where SMTP answers with `Breach.smtp`.

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
from gateway.store.rate_counts import DAY, HOUR, MINUTE, Count, window_start

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
    """Who is counted: a principal, a relay network or an API token, each by name."""

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

    @property
    def smtp(self) -> tuple[int, str]:
        """The SMTP reply (code, text): try again later (451 4.7.1), or, for too many
        recipients in one message, send the rest in another (452 4.5.3, RFC 5321 4.5.3.1.10)."""
        if self.limit == "recipients_per_message":
            return 452, f"4.5.3 {self.text}"
        return 451, f"4.7.1 {self.text}"

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


_NONE = Count()


@dataclass(frozen=True)
class Limit:
    """One limit a sender has (not unlimited)."""

    name: str  # one of RATE_LIMIT_NAMES
    allowed: int
    seconds: int | None  # its window; None: recipients_per_message
    of_recipients: bool  # counts recipients, not messages


def limits_of(quota: RateQuota) -> tuple[Limit, ...]:
    """The limits `quota` sets, in the order of RATE_LIMIT_NAMES."""
    return tuple(
        Limit(name, allowed, WINDOW_OF.get(name), name.startswith("recipients"))
        for name in RATE_LIMIT_NAMES
        if (allowed := quota.limit(name)) is not None
    )


def over(
    key: RateKey,
    limits: tuple[Limit, ...],
    counts: Mapping[int, Count],
    now: float,
    recipients: int,
) -> Breach | None:
    """The limit one more message to `recipients` recipients would pass, given the
    current windows' `counts`; of several, the one that ends last (pure)."""
    worst: Breach | None = None
    for limit in limits:
        seconds = limit.seconds
        if seconds is None:
            if recipients > limit.allowed:
                return Breach(key, limit.name, limit.allowed, 0, 0)
            continue
        count = counts.get(seconds, _NONE)
        after = count.recipients + recipients if limit.of_recipients else count.messages + 1
        if after <= limit.allowed:
            continue
        start = window_start(now, seconds)
        retry = max(1, math.ceil(start + seconds - now))
        if worst is None or retry > worst.retry_after:
            worst = Breach(key, limit.name, limit.allowed, start, retry)
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
    _limits: dict[RateKey, tuple[Limit, ...]] = field(default_factory=dict)
    _next_prune: float = 0.0

    def quota(self, key: RateKey) -> RateQuota:
        if key.kind == "network":
            return self.config.for_network(key.name)
        if key.kind == "principal":
            return self.config.for_principal(key.name)
        return self.config.for_token(key.name)

    def limits(self, key: RateKey) -> tuple[Limit, ...]:
        """`key`'s limits (made once: the settings do not change while serving)."""
        found = self._limits.get(key)
        if found is None:
            if len(self._limits) > 10_000:  # many API tokens: start again
                self._limits.clear()
            found = self._limits[key] = limits_of(self.quota(key))
        return found

    def usage(self, conn: Connection, key: RateKey, now: float) -> list[Used]:
        """Each limit of `key` against its current window's count (`phigate principal usage`)."""
        quota = self.quota(key)
        counts = rate_counts.read(conn, str(key), now)
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

    def known(self, key: RateKey, recipients: int) -> Breach | None:
        """The limit a message to `recipients` recipients would pass, as far as this
        process knows without asking the database."""
        now = self.clock()
        seen = self._seen.get(key)
        counts = seen.still(now) if seen is not None else {}
        return over(key, self.limits(key), counts, now, recipients)

    def charge(self, conn: Connection, key: RateKey, recipients: int, now: float) -> Charged:
        """In the transaction that stores a message: the limit it would pass, if any
        (then nothing is counted, and the caller must store nothing), else count it.

        The first breach of an audited quota in its window is appended to the trail
        here, once for every process and node. May run again if the writer redoes
        its batch: it keeps nothing of its own until `learn`.
        """
        limits = self.limits(key)
        if not limits:
            return Charged(key, Seen(now, {}))
        if now >= self._next_prune:
            rate_counts.prune(conn, now)
            self._next_prune = now + _PRUNE_SECONDS
        counting = rate_counts.counting(conn)
        counts = counting.current(str(key), now)
        breach = over(key, limits, counts, now, recipients)
        if breach is None:
            counting.add(str(key), recipients, now)
            one = Count(1, recipients)
            return Charged(key, Seen(now, {s: count.plus(one) for s, count in counts.items()}))
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

    async def early(self, db: Database, key: RateKey, recipients: int) -> Breach | None:
        """`known`, for a refusal before the message is stored: at MAIL (0 recipients),
        at each RCPT, and as intake begins. A refusal is counted, and the first of an
        audited quota in this process per window asks the database whether it is the
        first anywhere (then audits it)."""
        breach = self.known(key, recipients)
        if breach is not None:
            await self._refused_early(db, breach)
        return breach

    async def _refused_early(self, db: Database, breach: Breach) -> None:
        self._note(breach)
        mark = (breach.key, breach.limit, breach.window_start)
        if breach.limit not in AUDITED or mark in self._audited:
            return
        if len(self._audited) > 10_000:  # the database still knows which were audited
            self._audited.clear()
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
