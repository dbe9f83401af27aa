"""What one SMTP client may hold: connection slots, session length, refusals.

These bound what an unauthenticated client can take from everyone else: the
connection slots of a listener, a session kept open with keep-alives, and
audit rows written for its refused commands.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.audit.trail import AuditEvent
from gateway.clients import ConnectionCounter, client_key
from gateway.config import LimitsConfig

# Commands that move no mail: a client repeating them only holds its slot.
JUNK_COMMANDS = frozenset({"NOOP", "RSET", "VRFY", "EXPN", "HELP", "HELO", "EHLO"})
SESSION_EXPIRED = "421 4.4.2 Session time limit reached; reconnect to go on"
# A client turned away at the connection limit is audited at most this often.
TURNED_AWAY_AUDIT_SECONDS = 60.0


@dataclass
class ConnectionLimiter(ConnectionCounter):
    """Counts one listener's open connections, and the clients turned away at its limits."""

    limits: LimitsConfig
    clock: Callable[[], float] = time.monotonic
    # Per client: (when its last turned-away connection was audited, how many since).
    _turned_away: dict[str, tuple[float, int]] = field(default_factory=dict)

    def turned_away(self, ip: str) -> int | None:
        """Count a connection refused at the limit; None if it is not to be audited.

        Otherwise it is to be audited, and the result is how many were only
        counted since the client's last audited one: a connection flood
        writes one audit row per client a minute, not one per connection.
        """
        key = client_key(ip)
        now = self.clock()
        audited_at, since = self._turned_away.get(key, (-TURNED_AWAY_AUDIT_SECONDS, 0))
        if now - audited_at < TURNED_AWAY_AUDIT_SECONDS:
            self._turned_away[key] = (audited_at, since + 1)
            return None
        if len(self._turned_away) > 100_000:  # bound memory under a spray of addresses
            horizon = now - TURNED_AWAY_AUDIT_SECONDS
            self._turned_away = {k: v for k, v in self._turned_away.items() if v[0] > horizon}
        self._turned_away[key] = (now, 0)
        return since


@dataclass
class SessionBudget:
    """How long a session may last and how many commands it may send."""

    limits: LimitsConfig
    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    commands: int = 0
    junk: int = 0

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def seconds_left(self) -> float:
        return self.started + self.limits.max_session_seconds - self.clock()

    def charge(self, command: str) -> str | None:
        """Count a command; returns the 421 reply that ends the session, or None."""
        if command == "QUIT":
            return None
        if self.seconds_left <= 0:
            return SESSION_EXPIRED
        self.commands += 1
        if self.commands > self.limits.max_session_commands:
            return "421 4.7.0 Too many commands in one session; reconnect to go on"
        if command in JUNK_COMMANDS:
            self.junk += 1
            if self.junk > self.limits.max_session_junk_commands:
                return (
                    "421 4.7.0 Too many commands that send no mail "
                    "(NOOP, RSET, VRFY, EXPN, HELP, HELO, EHLO); closing"
                )
        return None


@dataclass
class RefusalTally:
    """A session's refusals: all counted, the first few audited one by one.

    One audit row per refusal would let a client that pipelines bad commands
    write thousands of fsynced rows a second.
    """

    limits: LimitsConfig
    counts: Counter[str] = field(default_factory=Counter)
    total: int = 0
    summarised: int = 0  # refusals already covered by an audited summary

    def count(self, refusal: AuditEvent) -> bool:
        """Count a refusal; True if it is to be audited in full."""
        kind = refusal.result if refusal.event == "refused" else f"{refusal.event} {refusal.result}"
        self.counts[f"{kind} {refusal.code}"] += 1
        self.total += 1
        return self.total <= self.limits.audit_refusals_in_full

    @property
    def exhausted(self) -> bool:
        return self.total >= self.limits.max_session_refusals

    def summary(
        self, principal: str | None, client_ip: str, *, closed: bool = False
    ) -> AuditEvent | None:
        """The event recording what was only counted; None if everything was audited."""
        in_full = min(self.total, self.limits.audit_refusals_in_full)
        if self.total == self.summarised or (self.total <= in_full and not closed):
            return None
        self.summarised = self.total
        counts = ", ".join(f"{key} x{n}" for key, n in sorted(self.counts.items()))
        detail = f"{self.total} refusals ({in_full} audited one by one): {counts}"
        if closed:
            detail += "; session closed at max_session_refusals"
        return AuditEvent(
            event="refused",
            result="session",
            principal=principal,
            client_ip=client_ip,
            code=421 if closed else None,
            detail=detail,
        )
