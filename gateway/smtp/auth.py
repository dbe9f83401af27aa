"""Checking AUTH credentials, with back-off and lockout against guessing."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from argon2.exceptions import InvalidHashError, VerificationError

from gateway.clients import client_key
from gateway.config import LimitsConfig
from gateway.store import principals
from gateway.store.database import Database
from gateway.store.principals import Principal


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0
    last: float = 0.0


@dataclass
class AuthGuard:
    """Counts failures per (user, client) and per client; both lock that client out.

    A client is an IPv4 address or an IPv6 /64. Nothing is counted per user
    alone: failures from a stranger must not lock the principal out everywhere.
    """

    limits: LimitsConfig
    clock: Callable[[], float] = time.monotonic
    _by_key: dict[str, _Failures] = field(default_factory=dict)

    def _keys(self, user: str, ip: str) -> tuple[str, str]:
        client = client_key(ip)
        return f"user:{user.lower()} from:{client}", f"client:{client}"

    def locked(self, user: str, ip: str) -> bool:
        now = self.clock()
        return any(
            self._by_key.get(k, _Failures()).locked_until > now for k in self._keys(user, ip)
        )

    def failure(self, user: str, ip: str) -> float:
        """Record a failure; returns how long to delay the reply."""
        now = self.clock()
        worst = 0
        limits = self.limits
        for key in self._keys(user, ip):
            entry = self._by_key.setdefault(key, _Failures())
            if now - entry.last > self.limits.auth_lockout_seconds:
                entry.count = 0  # failures long ago no longer count
            entry.count += 1
            entry.last = now
            if entry.count >= self.limits.auth_lockout_after:
                entry.locked_until = now + self.limits.auth_lockout_seconds
                entry.count = 0
            worst = max(worst, entry.count)
        self._prune(now)
        delay: float = limits.auth_backoff_base * 2.0 ** max(worst - 1, 0)
        return min(delay, limits.auth_backoff_max)

    def success(self, user: str, ip: str) -> None:
        for key in self._keys(user, ip):
            entry = self._by_key.get(key)
            if entry is not None and entry.locked_until <= self.clock():
                del self._by_key[key]

    def _prune(self, now: float) -> None:
        # Bound memory under a spray of distinct users or IPs.
        if len(self._by_key) > 100_000:
            horizon = self.limits.auth_lockout_seconds
            self._by_key = {
                k: v
                for k, v in self._by_key.items()
                if v.locked_until > now or now - v.last < horizon
            }


class Authenticator:
    """Verifies a principal's secret against its argon2 hash.

    A successful (hash, secret digest) pair is remembered so that a client
    reconnecting for every message does not pay for argon2 each time; the
    stored hash is re-read on every AUTH, so disabling a principal or
    changing its secret takes effect at once.
    """

    def __init__(self, db: Database, parallel_checks: int = 2) -> None:
        self.db = db
        self._verified: set[tuple[str, bytes]] = set()
        # Each argon2 check takes 19 MiB and a core for milliseconds:
        # bound them so an AUTH storm cannot exhaust memory or starve SMTP.
        self._slots = asyncio.Semaphore(parallel_checks)

    async def verify(self, name: str, secret: str) -> Principal | None:
        principal = await self.db.read(lambda conn: principals.get(conn, name))
        if principal is None or not principal.enabled:
            # Spend the same work as a real check so unknown names are not revealed by timing.
            await self._check_hash(_dummy_hash(), secret)
            return None
        digest = hashlib.sha256(secret.encode()).digest()
        if (principal.secret_hash, digest) in self._verified:
            return principal
        if not await self._check_hash(principal.secret_hash, secret):
            return None
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified.add((principal.secret_hash, digest))
        return principal

    async def _check_hash(self, secret_hash: str, secret: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(_verify_hash, secret_hash, secret)


def _verify_hash(secret_hash: str, secret: str) -> bool:
    try:
        return principals.HASHER.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    # Made on first use: hashing costs 64 MiB, which start-up need not pay.
    return principals.HASHER.hash("phigate-timing-equaliser")
