"""Checking AUTH credentials, with back-off and lockout against guessing."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import Callable
from functools import partial

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection

from gateway.clients import client_key
from gateway.config import LimitsConfig
from gateway.store import auth_failures, principals
from gateway.store.auth_failures import Failures
from gateway.store.database import Database
from gateway.store.principals import Principal


def _after_failure(entry: Failures, now: float, limits: LimitsConfig) -> Failures:
    """A key's failures after one more: failures long ago no longer count, and
    `auth_lockout_after` of them lock the key out (and start the count again)."""
    count = (0 if now - entry.last > limits.auth_lockout_seconds else entry.count) + 1
    if count >= limits.auth_lockout_after:
        return Failures(0, now, now + limits.auth_lockout_seconds)
    return Failures(count, now, entry.locked_until)


class AuthGuard:
    """Counts failures per (user, client) and per client; both lock that client out.

    A client is an IPv4 address or an IPv6 /64. Nothing is counted per user
    alone: failures from a stranger must not lock the principal out everywhere.
    Counted in this process's memory, or, given `db`, in the database, where
    every process of every node on it counts the same failures.
    """

    def __init__(
        self,
        limits: LimitsConfig,
        clock: Callable[[], float] | None = None,
        db: Database | None = None,
    ) -> None:
        self.limits = limits
        # Nodes compare their times in the database: wall clock there.
        self.clock = clock or (time.time if db is not None else time.monotonic)
        self.db = db
        self._by_key: dict[str, Failures] = {}

    def _keys(self, user: str, ip: str) -> tuple[str, str]:
        client = client_key(ip)
        return f"user:{user.lower()} from:{client}", f"client:{client}"

    async def _read(self, keys: tuple[str, str]) -> list[Failures]:
        if self.db is None:
            return [self._by_key.get(key, Failures()) for key in keys]
        return await self.db.read(partial(auth_failures.read, keys=keys))

    async def locked(self, user: str, ip: str) -> bool:
        now = self.clock()
        return any(entry.locked_until > now for entry in await self._read(self._keys(user, ip)))

    async def failure(self, user: str, ip: str) -> float:
        """Record a failure; returns how long to delay the reply."""
        now, limits, keys = self.clock(), self.limits, self._keys(user, ip)
        step = partial(_after_failure, now=now, limits=limits)
        if self.db is None:
            counted = [step(self._by_key.get(key, Failures())) for key in keys]
            self._by_key.update(zip(keys, counted, strict=True))
            self._prune(now)
        else:

            def record(conn: Connection) -> list[Failures]:
                auth_failures.prune(conn, now, limits.auth_lockout_seconds)
                return auth_failures.change(conn, keys, step)

            counted = await self.db.write(record, durable=False)
        worst = max(entry.count for entry in counted)
        delay: float = limits.auth_backoff_base * 2.0 ** max(worst - 1, 0)
        return min(delay, limits.auth_backoff_max)

    async def success(self, user: str, ip: str) -> None:
        now, keys = self.clock(), self._keys(user, ip)
        if self.db is None:
            for key in keys:
                entry = self._by_key.get(key)
                if entry is not None and entry.locked_until <= now:
                    del self._by_key[key]
        elif any(entry.count for entry in await self._read(keys)):  # a write only if needed
            await self.db.write(partial(auth_failures.clear, keys=keys, now=now), durable=False)

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
