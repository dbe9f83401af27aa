"""Sending one message to one next hop with aiosmtplib, with an explicit TLS policy.

Each connection is made under a `TlsPolicy` decided by the router (plain,
opportunistic, or verified by PKIX, MTA-STS, DANE or a pinned certificate); a
verified policy never falls back to plaintext or to an unverified certificate.
What was negotiated is returned as `TlsEvidence` for the audit trail.
Once greeted and secured, a connection's mail transactions run on
`session.SmtpSession` (PIPELINING where offered). Connections are kept open
and reused between messages of the same policy: opening a TCP and TLS session
per message would cost more than the message.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import aiosmtplib
from cryptography import x509

from gateway.delivery.dane import DaneError, Tlsa, authenticate
from gateway.delivery.session import Reply, SessionError, SmtpSession, Transaction, accepted

TlsMode = Literal["opportunistic", "required", "none"]
# How a verified connection was authenticated, as recorded in the audit trail.
VerifyMethod = Literal["pkix", "mta-sts", "dane", "pin"]

# Our own status for "this delivery mode cannot reach this recipient" (no TLS
# of the required kind, no usable certificate): the signal for the policy's
# next delivery mode (e.g. from tls to portal).
MODE_UNAVAILABLE = "4.7.5"
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\s")
_IDLE_SECONDS = 30.0


def sanitise_reply(text: str) -> str:
    """A remote reply as one printable line, short enough for a column."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())[:200]


@dataclass(frozen=True)
class TlsPolicy:
    """How one connection must be secured."""

    level: Literal["none", "opportunistic", "verify"]
    method: VerifyMethod = "pkix"  # for level "verify"
    tlsa: tuple[Tlsa, ...] = ()  # method dane: the MX host's usable TLSA records
    names: tuple[str, ...] = ()  # method dane: reference names for DANE-TA
    pins: frozenset[str] = frozenset()  # method pin: SHA-256 (hex) of accepted certificates

    @classmethod
    def from_mode(cls, mode: TlsMode) -> TlsPolicy:
        return cls("verify") if mode == "required" else cls(mode)


@dataclass(frozen=True)
class TlsEvidence:
    """What a TLS session negotiated and how the peer was authenticated."""

    version: str
    cipher: str
    peer_sha256: str
    verified: str  # pkix, mta-sts, dane-ee, dane-ta, pin, or "no" (opportunistic)
    local_ip: str | None = None  # our end of the session (for TLS reports)

    def text(self) -> str:
        return (
            f"tls={self.version} cipher={self.cipher} "
            f"cert=sha256:{self.peer_sha256} verify={self.verified}"
        )


@dataclass(frozen=True)
class RecipientResult:
    recipient: str
    code: int | None  # None: no SMTP reply (connection or TLS failure)
    status: str  # enhanced status code, e.g. "2.0.0", "4.4.1", "5.1.1"
    reply: str
    remote_host: str | None
    mode: str = "standard"  # the policy's delivery mode that produced this result
    tls: TlsEvidence | None = None
    note: str = ""  # mode-specific metadata for the audit trail (never content)

    @property
    def mode_unavailable(self) -> bool:
        return self.code is None and self.status == MODE_UNAVAILABLE

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
    """The hop could not take the message at all (connect, TLS, or a session-level reply).

    `tls_failure` is the RFC 8460 result type when a required TLS session failed,
    `local_ip` our end of that session."""

    def __init__(
        self,
        reason: str,
        code: int | None = None,
        status: str = "4.4.1",
        tls_failure: str | None = None,
        local_ip: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.status = status
        self.tls_failure = tls_failure
        self.local_ip = local_ip


def _local_ip(client: aiosmtplib.SMTP) -> str | None:
    """Our address on a connected client's socket."""
    try:
        sockname = client.get_transport_info("sockname")
    except (aiosmtplib.SMTPException, AttributeError, OSError):
        return None
    return str(sockname[0]) if sockname else None


def _tls_unavailable(
    client: aiosmtplib.SMTP, reason: str, result_type: str, local_ip: str | None
) -> HopError:
    client.close()
    return HopError(reason, None, MODE_UNAVAILABLE, result_type, local_ip)


def _presented_chain(ssl_object: ssl.SSLObject) -> list[x509.Certificate]:
    """The certificates the server sent, leaf first (Python 3.13 made this public)."""
    getter = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        getter = ssl_object._sslobj.get_unverified_chain  # type: ignore[attr-defined]
    chain = getter() or []
    return [
        x509.load_der_x509_certificate(
            c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
        )
        for c in chain
    ]


def _certificate_failure(exc: ssl.SSLError) -> str:
    """RFC 8460 result type for a failed PKIX verification."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = (exc.verify_message or "").lower()
        if "hostname" in message or "ip address mismatch" in message:
            return "certificate-host-mismatch"
        if "expired" in message:
            return "certificate-expired"
        return "certificate-not-trusted"
    return "validation-failure"


@dataclass
class _Connection:
    session: SmtpSession
    evidence: TlsEvidence | None
    since: float = field(default=0.0)

    @classmethod
    def ready(cls, client: aiosmtplib.SMTP, evidence: TlsEvidence | None) -> _Connection:
        """A greeted (and secured) client's connection, its transactions ours from now on."""
        assert client.transport is not None
        pipelining = client.supports_extension("pipelining")
        return cls(SmtpSession.take_over(client.transport, pipelining), evidence)


class SmtpSender:
    def __init__(
        self,
        helo_name: str,
        ca_file: str | None,
        connect_timeout: float,
        command_timeout: float,
    ) -> None:
        self.helo_name = helo_name
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._verified = ssl.create_default_context(cafile=ca_file)
        self._verified.minimum_version = ssl.TLSVersion.TLSv1_2
        # For DANE and pinned certificates: the chain is checked after the
        # handshake against the TLSA records or pins, not against CAs.
        self._self_checked = ssl.create_default_context()
        self._self_checked.minimum_version = ssl.TLSVersion.TLSv1_2
        self._self_checked.check_hostname = False
        self._self_checked.verify_mode = ssl.CERT_NONE
        self._unverified = ssl.create_default_context()
        self._unverified.check_hostname = False
        self._unverified.verify_mode = ssl.CERT_NONE
        self._idle: dict[tuple[str, int, str, TlsPolicy], list[_Connection]] = {}

    async def _open(
        self, address: str, port: int, server_name: str, policy: TlsPolicy
    ) -> _Connection:
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
            local_ip = _local_ip(client)
            await client.ehlo()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise HopError(f"cannot connect to {server_name}:{port}: {type(exc).__name__}") from exc
        if policy.level == "none":
            return _Connection.ready(client, None)
        if not client.supports_extension("starttls"):
            if policy.level == "verify":
                raise _tls_unavailable(
                    client,
                    f"{server_name} does not offer STARTTLS and verified TLS is required",
                    "starttls-not-supported",
                    local_ip,
                )
            return _Connection.ready(client, None)
        pkix = policy.level == "verify" and policy.method in ("pkix", "mta-sts")
        if pkix:
            context = self._verified
        elif policy.level == "verify":
            context = self._self_checked
        else:
            context = self._unverified
        try:
            await client.starttls(
                server_hostname=server_name, validate_certs=pkix, tls_context=context
            )
        except ssl.SSLError as exc:
            raise _tls_unavailable(
                client,
                f"TLS with {server_name} failed: {_certificate_failure(exc)}",
                _certificate_failure(exc),
                local_ip,
            ) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise _tls_unavailable(
                client,
                f"TLS with {server_name} failed: {type(exc).__name__}",
                "validation-failure",
                local_ip,
            ) from exc
        ssl_object = client.get_transport_info("ssl_object")
        leaf = ssl_object.getpeercert(binary_form=True) or b""
        verified: str = policy.method if pkix else "no"
        if policy.level == "verify" and not pkix:
            verified = self._check_chain(client, ssl_object, leaf, server_name, policy)
        cipher = ssl_object.cipher()
        evidence = TlsEvidence(
            version=ssl_object.version() or "unknown",
            cipher=cipher[0] if cipher else "unknown",
            peer_sha256=hashlib.sha256(leaf).hexdigest(),
            verified=verified,
            local_ip=local_ip,
        )
        # RFC 3207 §4.2: what the server offers is asked again inside TLS.
        try:
            await client.ehlo()
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            raise HopError(
                sanitise_reply(exc.message), exc.code, _status(exc.code, exc.message)
            ) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise HopError(f"connection to {server_name} failed: {type(exc).__name__}") from exc
        return _Connection.ready(client, evidence)

    def _check_chain(
        self,
        client: aiosmtplib.SMTP,
        ssl_object: ssl.SSLObject,
        leaf: bytes,
        server_name: str,
        policy: TlsPolicy,
    ) -> str:
        """Authenticate a DANE or pinned peer after the handshake; raise HopError."""
        if policy.method == "pin":
            if hashlib.sha256(leaf).hexdigest() in policy.pins:
                return "pin"
            raise _tls_unavailable(
                client,
                f"certificate of {server_name} does not match the pinned fingerprint",
                "validation-failure",
                _local_ip(client),
            )
        try:
            return authenticate(
                _presented_chain(ssl_object), policy.tlsa, policy.names, datetime.now(UTC)
            )
        except (DaneError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, DaneError) else "unreadable certificate"
            result = exc.result_type if isinstance(exc, DaneError) else "validation-failure"
            raise _tls_unavailable(
                client,
                f"DANE authentication of {server_name} failed: {reason}",
                result,
                _local_ip(client),
            ) from exc

    def _reusable(self, key: tuple[str, int, str, TlsPolicy]) -> _Connection | None:
        """An idle connection left clean by a finished transaction (no RSET round trip)."""
        pool = self._idle.get(key, [])
        now = time.monotonic()
        while pool:
            idle = pool.pop()
            if now - idle.since < _IDLE_SECONDS and idle.session.is_open:
                return idle
            idle.session.close()
        return None

    def _checkin(self, key: tuple[str, int, str, TlsPolicy], conn: _Connection) -> None:
        pool = self._idle.setdefault(key, [])
        if len(pool) < 64 and conn.session.is_open:
            conn.since = time.monotonic()
            pool.append(conn)
        else:
            conn.session.close()

    async def send(
        self,
        address: str,
        port: int,
        server_name: str,
        sender: str,
        recipients: list[str],
        content: bytes,
        policy: TlsPolicy,
    ) -> list[RecipientResult]:
        """One SMTP transaction; per-recipient results. Raises HopError if none was possible."""
        key = (address, port, server_name, policy)
        conn = self._reusable(key)
        if conn is not None:
            try:
                done = await self._transaction(conn, sender, recipients, content)
            except SessionError as exc:
                if conn.session.content_sent:
                    raise HopError(f"connection to {server_name} failed: {exc}") from None
                done = None  # closed while idle: nothing was taken, start over
            if done is not None and done.mail.code == 250:
                return self._results(conn, key, server_name, recipients, done)
            # Closed while idle or left in an unknown state: start over on a fresh connection.
            conn.session.close()
        conn = await self._open(address, port, server_name, policy)
        try:
            done = await self._transaction(conn, sender, recipients, content)
        except SessionError as exc:
            raise HopError(f"connection to {server_name} failed: {exc}") from None
        if done.mail.code != 250:
            conn.session.close()
            raise HopError(sanitise_reply(done.mail.text), done.mail.code, _status(*done.mail))
        return self._results(conn, key, server_name, recipients, done)

    async def _transaction(
        self, conn: _Connection, sender: str, recipients: list[str], content: bytes
    ) -> Transaction:
        try:
            return await conn.session.transaction(sender, recipients, content, self.command_timeout)
        except Exception:  # the connection is in an unknown state
            conn.session.close()
            raise

    def _results(
        self,
        conn: _Connection,
        key: tuple[str, int, str, TlsPolicy],
        server_name: str,
        recipients: list[str],
        done: Transaction,
    ) -> list[RecipientResult]:
        """Each recipient's result: its RCPT's refusal, else what became of the content."""
        self._checkin(key, conn)
        content_reply = done.final or done.data

        def result(reply: Reply, rcpt: str) -> RecipientResult:
            code, text = reply
            status = _status(code, text)
            return RecipientResult(
                rcpt, code, status, sanitise_reply(text), server_name, tls=conn.evidence
            )

        return [
            result(content_reply if accepted(reply) and content_reply else reply, rcpt)
            for rcpt, reply in zip(recipients, done.recipients, strict=True)
        ]

    def close(self) -> None:
        for pool in self._idle.values():
            for idle in pool:
                idle.session.close()
        self._idle.clear()
