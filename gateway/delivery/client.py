"""Sending one message to one next hop with aiosmtplib, with an explicit TLS mode.

Connections are kept open and reused (RSET between messages): opening a TCP
and TLS session per message would cost more than the message itself.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import aiosmtplib

TlsMode = Literal["opportunistic", "required", "none"]

# Our own status for "no TLS of the required kind with this server": the
# signal for the policy's next delivery mode (e.g. from tls to portal).
TLS_UNAVAILABLE = "4.7.5"
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\s")
_IDLE_SECONDS = 30.0


def sanitise_reply(text: str) -> str:
    """A remote reply as one printable line, short enough for a column."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())[:200]


@dataclass(frozen=True)
class RecipientResult:
    recipient: str
    code: int | None  # None: no SMTP reply (connection or TLS failure)
    status: str  # enhanced status code, e.g. "2.0.0", "4.4.1", "5.1.1"
    reply: str
    remote_host: str | None
    mode: str = "standard"  # the policy's delivery mode that produced this result

    @property
    def tls_unavailable(self) -> bool:
        return self.code is None and self.status == TLS_UNAVAILABLE

    @property
    def delivered(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code is not None and self.code >= 500


def _status(code: int, message: str) -> str:
    match = _ENHANCED.match(message)
    if match:
        return match.group(1)
    return f"{code // 100}.0.0"


class HopError(Exception):
    """The hop could not take the message at all (connect, TLS, or a session-level reply)."""

    def __init__(self, reason: str, code: int | None = None, status: str = "4.4.1") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.status = status


@dataclass
class _Idle:
    client: aiosmtplib.SMTP
    since: float


class SmtpSender:
    def __init__(
        self,
        helo_name: str,
        tls: TlsMode,
        ca_file: str | None,
        connect_timeout: float,
        command_timeout: float,
    ) -> None:
        self.helo_name = helo_name
        self.tls = tls
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._verified = ssl.create_default_context(cafile=ca_file)
        self._verified.minimum_version = ssl.TLSVersion.TLSv1_2
        self._unverified = ssl.create_default_context()
        self._unverified.check_hostname = False
        self._unverified.verify_mode = ssl.CERT_NONE
        self._idle: dict[tuple[str, int, str], list[_Idle]] = {}

    async def _open(self, address: str, port: int, server_name: str) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=address,
            port=port,
            local_hostname=self.helo_name,
            timeout=self.command_timeout,
            start_tls=False,  # decided below, never left to the library's default
            use_tls=False,
        )
        try:
            await client.connect(timeout=self.connect_timeout)
            await client.ehlo()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise HopError(f"cannot connect to {server_name}:{port}: {type(exc).__name__}") from exc
        if self.tls == "none":
            return client
        offered = client.supports_extension("starttls")
        if not offered:
            if self.tls == "required":
                client.close()
                raise HopError(
                    f"{server_name} does not offer STARTTLS and TLS is required",
                    None,
                    TLS_UNAVAILABLE,
                )
            return client
        context = self._verified if self.tls == "required" else self._unverified
        try:
            await client.starttls(
                server_hostname=server_name,
                validate_certs=self.tls == "required",
                tls_context=context,
            )
        except (TimeoutError, aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            client.close()
            raise HopError(
                f"TLS with {server_name} failed: {type(exc).__name__}", None, TLS_UNAVAILABLE
            ) from exc
        return client

    def _reusable(self, key: tuple[str, int, str]) -> aiosmtplib.SMTP | None:
        """An idle connection left clean by a finished transaction (no RSET round trip)."""
        pool = self._idle.get(key, [])
        now = time.monotonic()
        while pool:
            idle = pool.pop()
            if now - idle.since < _IDLE_SECONDS and idle.client.is_connected:
                return idle.client
            idle.client.close()
        return None

    def _checkin(self, key: tuple[str, int, str], client: aiosmtplib.SMTP) -> None:
        pool = self._idle.setdefault(key, [])
        if len(pool) < 64 and client.is_connected:
            pool.append(_Idle(client, time.monotonic()))
        else:
            client.close()

    async def send(
        self,
        address: str,
        port: int,
        server_name: str,
        sender: str,
        recipients: Sequence[str],
        content: bytes,
    ) -> list[RecipientResult]:
        """One SMTP transaction; per-recipient results. Raises HopError if none was possible."""
        key = (address, port, server_name)
        client = self._reusable(key)
        if client is not None:
            try:
                await client.mail(sender)
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                # Closed while idle, or in an unknown state: start over on a fresh connection.
                client.close()
                client = None
        if client is None:
            client = await self._open(address, port, server_name)
            await self._mail(client, sender, server_name)
        return await self._finish(client, key, server_name, recipients, content)

    async def _mail(self, client: aiosmtplib.SMTP, sender: str, server_name: str) -> None:
        try:
            await client.mail(sender)
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            raise HopError(
                sanitise_reply(exc.message), exc.code, _status(exc.code, exc.message)
            ) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise HopError(f"connection to {server_name} failed: {type(exc).__name__}") from exc

    async def _finish(
        self,
        client: aiosmtplib.SMTP,
        key: tuple[str, int, str],
        server_name: str,
        recipients: Sequence[str],
        content: bytes,
    ) -> list[RecipientResult]:
        """RCPT for each recipient and DATA, after a successful MAIL."""
        try:
            accepted: list[str] = []
            results: dict[str, RecipientResult] = {}
            for rcpt in recipients:
                try:
                    await client.rcpt(rcpt)
                    accepted.append(rcpt)
                except aiosmtplib.SMTPResponseException as exc:
                    results[rcpt] = RecipientResult(
                        rcpt,
                        exc.code,
                        _status(exc.code, exc.message),
                        sanitise_reply(exc.message),
                        server_name,
                    )
            if accepted:
                try:
                    response = await client.data(content)
                    outcome = (
                        response.code,
                        _status(response.code, response.message),
                        sanitise_reply(response.message),
                    )
                except aiosmtplib.SMTPResponseException as exc:
                    outcome = (
                        exc.code,
                        _status(exc.code, exc.message),
                        sanitise_reply(exc.message),
                    )
                for rcpt in accepted:
                    results[rcpt] = RecipientResult(
                        rcpt, outcome[0], outcome[1], outcome[2], server_name
                    )
            else:
                await client.rset()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise HopError(f"connection to {server_name} failed: {type(exc).__name__}") from exc
        self._checkin(key, client)
        return [results[r] for r in recipients]

    def close(self) -> None:
        for pool in self._idle.values():
            for idle in pool:
                idle.client.close()
        self._idle.clear()
