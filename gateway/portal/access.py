"""Who may open a portal copy: access codes, passphrases, lockouts, sessions, CSRF.

Decisions are pure functions of a copy's counters and the time; the store
(gateway.store.portal_access) records what they decide. Codes are 8 random
digits, kept only as an HMAC under the portal key (bound to the copy, so a
hash cannot be moved to another row) and compared in constant time. Session
and CSRF secrets are random; only a SHA-256 of a session's secret is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from gateway.config import PortalConfig
from gateway.store.portal import Copy

KEY_FILE = "portal.key"
CODE_DIGITS = 8
_HOUR = 3600.0


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(key: bytes, copy_id: int, code: str) -> str:
    return hmac.new(key, f"code\x00{copy_id}\x00{code}".encode(), hashlib.sha256).hexdigest()


def normalised_code(typed: str) -> str | None:
    """The digits someone typed (spaces and dashes allowed), or None if it cannot be a code."""
    digits = "".join(typed.split()).replace("-", "")
    return digits if len(digits) == CODE_DIGITS and digits.isascii() and digits.isdigit() else None


def code_matches(key: bytes, copy: Copy, typed: str, now: float) -> bool:
    """Whether `typed` is the copy's current code and it has not expired."""
    code = normalised_code(typed)
    if code is None or copy.code_hash is None or copy.code_expires_at is None:
        return False
    if now >= copy.code_expires_at:
        return False
    return hmac.compare_digest(code_hash(key, copy.id, code), copy.code_hash)


def locked_until(copy: Copy, now: float) -> float | None:
    """When a locked copy opens again; None if it is not locked."""
    return copy.locked_until if copy.locked_until is not None and now < copy.locked_until else None


@dataclass(frozen=True)
class CodeWindow:
    """The hourly count of codes mailed for a link, after mailing one more."""

    codes_sent: int
    window_start: float


def next_code_window(copy: Copy, config: PortalConfig, now: float) -> CodeWindow | float:
    """The counters after mailing another code, or the time another may be mailed."""
    start = copy.codes_window_start
    if start is None or now - start >= _HOUR:
        return CodeWindow(1, now)
    if copy.codes_sent < config.codes_per_hour:
        return CodeWindow(copy.codes_sent + 1, start)
    return start + _HOUR


def lockout_end(failed: int, config: PortalConfig, now: float) -> float | None:
    """After `failed` wrong answers in a row: the end of the lockout they earn, if any."""
    return now + config.lockout_minutes * 60 if failed >= config.code_attempts else None


def new_secret() -> str:
    """A session's or CSRF cookie's secret."""
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token(key: bytes, cookie: str) -> str:
    """The form field that goes with a CSRF cookie (double submit, keyed)."""
    return hmac.new(key, f"csrf\x00{cookie}".encode(), hashlib.sha256).hexdigest()


def csrf_valid(key: bytes, cookie: str | None, field: str | None) -> bool:
    if not cookie or not field:
        return False
    return hmac.compare_digest(csrf_token(key, cookie), field)


class ClientRate:
    """Requests per client address per minute, in this process's memory.

    Fixed one-minute windows; at most `max_clients` addresses are tracked.
    When the table is full of live windows, a new address is refused until
    windows end (failing closed rather than growing without bound).
    """

    def __init__(self, per_minute: int, max_clients: int = 50_000) -> None:
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        window = self._windows.get(client)
        if window is None or now - window[0] >= 60:
            if window is None and len(self._windows) >= self.max_clients:
                self._prune(now)
                if len(self._windows) >= self.max_clients:
                    return False
            self._windows[client] = (now, 1)
            self._windows.move_to_end(client)
            return True
        if window[1] >= self.per_minute:
            return False
        self._windows[client] = (window[0], window[1] + 1)
        return True

    def _prune(self, now: float) -> None:
        # Windows are in order of their start, oldest first.
        while self._windows:
            client, (start, _) = next(iter(self._windows.items()))
            if now - start < 60:
                break
            del self._windows[client]
