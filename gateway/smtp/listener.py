"""The SMTP listener: aiosmtpd sessions with envelope checks, limits and audit.

Every refusal is an SMTP reply with an enhanced status code, and audited with
metadata only: the first few of a session one by one, the rest counted in one
event when the session ends (`gateway.smtp.limits`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import ssl
from base64 import b64decode
from binascii import Error as Base64Error
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session, TLSSetupException

from gateway import metrics
from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.config import LimitsConfig, ListenerConfig, RelayNetwork, relay_network_for
from gateway.consent.mailto import MailtoUnsubscribe
from gateway.intake import Intake, Submission
from gateway.logs import event
from gateway.mail.addresses import AddressError, normalise
from gateway.mail.content import author_refusal, content_problem, sender_refusal
from gateway.mail.headers import author_domains
from gateway.ratelimit import RateKey, RateLimiter
from gateway.siblings import Siblings
from gateway.smtp.auth import Authenticator, AuthGuard
from gateway.smtp.data import LargeMessages, read_data
from gateway.smtp.limits import SESSION_EXPIRED, ConnectionLimiter, RefusalTally, SessionBudget
from gateway.smtp.lines import BareLineEnding, CrlfCommandReader
from gateway.store.database import Database

log = logging.getLogger("gateway.smtp")

# aiosmtpd's own replies lack enhanced status codes (RFC 3463); add them.
_ENHANCED = {
    "421": "4.3.2",
    "450": "4.0.0",
    "451": "4.3.0",
    "452": "4.5.3",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "535": "5.7.8",
    "550": "5.7.1",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.7.0",
    "555": "5.5.4",
}
# Commands that may stand anywhere in a pipelined group (RFC 2920 §3.1).
_GROUPED = frozenset({"MAIL", "RCPT", "RSET"})
_HAS_ENHANCED = re.compile(rb"^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})")
_SIMPLE_PATH = re.compile(r"^\s*<([A-Za-z0-9._+=-]+@[A-Za-z0-9.-]+)>((?:\s+[A-Za-z0-9=.+-]+)*)\s*$")


def _enhanced_of(reply: bytes) -> str:
    """The enhanced status code of a reply ("5.7.1"), "" when it has none."""
    match = _HAS_ENHANCED.match(reply)
    return match.group(1).decode() if match else ""


@dataclass
class ListenerContext:
    """What all sessions of one listener share."""

    config: ListenerConfig
    limits: LimitsConfig
    hostname: str
    db: Database
    intake: Intake
    authenticator: Authenticator
    guard: AuthGuard
    limiter: ConnectionLimiter
    large_messages: LargeMessages
    relay_networks: list[RelayNetwork]
    tls_context: ssl.SSLContext | None
    # Set on listeners with `accept_unsubscribe`: opt-outs by mail, without AUTH.
    unsubscribe: MailtoUnsubscribe | None = None
    # Sending limits per principal and relay network (the same as intake's).
    rates: RateLimiter | None = None
    # The node's other processes: told how many sessions this one holds.
    siblings: Siblings | None = None
    sessions: set[PhigateSMTP] = field(default_factory=set)
    accepting: bool = True
    # Audit events of sessions that have ended, still being written.
    pending_audits: set[asyncio.Task[None]] = field(default_factory=set)

    def session_started(self, session: PhigateSMTP) -> None:
        self.sessions.add(session)
        if self.siblings is not None:
            self.siblings.session_opened()

    def session_ended(self, session: PhigateSMTP) -> None:
        if session in self.sessions:
            self.sessions.remove(session)
            if self.siblings is not None:
                self.siblings.session_closed()

    async def audit(self, audit_event: AuditEvent) -> None:
        await self.db.write(lambda conn: trail.append(conn, [audit_event]))

    async def audit_refusal(self, refusal: AuditEvent) -> None:
        """Audit a refusal if the database takes it: with the database gone the refusal
        stands all the same (nothing was taken in), and a content-free log line says
        that it went unaudited; the session carries on (a 451, a 421) as it would."""
        try:
            await self.audit(refusal)
        except Exception as exc:
            event(log, "refusal_not_audited", logging.ERROR, error=type(exc).__name__)

    def audit_later(self, refusal: AuditEvent) -> None:
        """Audit a refusal from a callback that cannot wait (a connection just lost)."""
        task = asyncio.get_running_loop().create_task(self.audit_refusal(refusal))
        self.pending_audits.add(task)
        task.add_done_callback(self.pending_audits.discard)

    async def flush_audits(self) -> None:
        await asyncio.sleep(0)  # aborted connections report their loss on the next turn
        await asyncio.gather(*self.pending_audits, return_exceptions=True)

    @property
    def implicit_tls(self) -> bool:
        return self.config.tls == "implicit"

    def relay_network_for(self, ip: str) -> RelayNetwork | None:
        if not self.config.allow_networks_without_auth:
            return None
        proxies = self.config.proxy_protocol
        if proxies.enabled and proxies.trusts(ip):
            # A load balancer's own session (a health check): never a relay.
            return None
        return relay_network_for(self.relay_networks, ip)

    def turned_away(self, client_ip: str, why: str, code: int | None) -> bool:
        """Count a connection closed before its session; True if it is audited.

        A client is audited at most once a minute, with a count of the others.
        """
        unaudited = self.limiter.turned_away(client_ip)
        if unaudited is None:  # counted, and audited with a later one
            return False
        self.audit_later(
            AuditEvent(
                event="refused",
                result="connect",
                client_ip=client_ip,
                code=code,
                detail=f"{why} ({unaudited} more turned away since the last such event)",
            )
        )
        return True


@dataclass
class SessionState:
    principal: str | None = None
    domains: tuple[str, ...] = ()
    relay: RelayNetwork | None = None
    # An unauthenticated transaction that may only reach unsubscribe addresses.
    unsubscribe_only: bool = False
    # Further domains the principal's From: and Sender: may name.
    from_domains: tuple[str, ...] = ()

    @property
    def rate_key(self) -> RateKey | None:
        """Whose sending limits this session's mail counts against (opt-outs: nobody's)."""
        if self.principal is not None:
            return RateKey("principal", self.principal)
        if self.relay is not None and not self.unsubscribe_only:
            return RateKey("network", self.relay.name)
        return None

    @property
    def author_domains(self) -> tuple[str, ...]:
        """The domains From: and Sender: may name: the principal's, else the relay network's."""
        if self.principal is None and self.relay is not None:
            return self.relay.author_domains
        return author_domains(self.domains, self.from_domains)


class PhigateSMTP(SMTP):
    """aiosmtpd's SMTP with session limits, CRLF-only commands, TLS timeout and enhanced codes."""

    def __init__(self, ctx: ListenerContext, handler: Handler, client_ip: str) -> None:
        super().__init__(
            handler,
            data_size_limit=ctx.limits.max_message_size,
            hostname=ctx.hostname,
            ident="ESMTP phigate",
            tls_context=ctx.tls_context if ctx.config.tls == "starttls" else None,
            require_starttls=ctx.config.tls == "starttls" and ctx.config.require_tls,
            timeout=ctx.limits.idle_timeout,
            auth_required=False,  # checked at MAIL so allow-listed networks can relay
            auth_require_tls=True,
            # With implicit TLS aiosmtpd sees no STARTTLS; it is TLS all the same.
            auth_exclude_mechanism=[],
            enable_SMTPUTF8=False,
        )
        self.ctx = ctx
        self.state = SessionState()
        # The peer's address, or the one a trusted load balancer's PROXY header named.
        self.client_ip = client_ip
        # Made by ConnectionGate for a connection it admitted: it holds a slot.
        self._counted = True
        self.budget = SessionBudget(ctx.limits)
        self.refusals = RefusalTally(ctx.limits)
        # Set when the refusal about to be pushed was already counted by the handler.
        self.reply_counted = False
        self._running_command = False
        # The command under way, and the replies held for the next write (see push).
        self._command: str | None = None
        self._held_replies: list[bytes] = []
        self._expiry: asyncio.TimerHandle | None = None
        # While DATA is read, when octets last arrived (or its turn came): the idle
        # timer then counts from there, so a slow but steady sender is not cut off.
        self._data_progress: float | None = None
        if ctx.implicit_tls:
            # Let AUTH through: the whole connection is already TLS.
            self._auth_require_tls = False
        # Every command passes one gate; aiosmtpd's command_call_limit counts
        # each command kind on its own and knows nothing of time.
        self._smtp_methods = {
            name: self._gated(name, method) for name, method in self._smtp_methods.items()
        }

    def _gated(
        self, command: str, method: Callable[[str], Awaitable[None]]
    ) -> Callable[[str], Awaitable[None]]:
        @functools.wraps(method)  # keeps the HELP text aiosmtpd attaches
        async def gated(arg: str) -> None:
            if self.transport is None or self.transport.is_closing():
                return  # pipelined commands after the session was ended
            reason = self.budget.charge(command)
            if reason is not None:
                await self.push(reason)
                self.transport.close()
                return
            self._running_command = True
            self._command = command
            try:
                await method(arg)
            finally:
                self._running_command = False
                self._command = None

        return gated

    def data_received(self, data: bytes) -> None:
        if self._data_progress is not None:
            self._data_progress = self.loop.time()
        super().data_received(data)

    def _note_data_progress(self) -> None:
        self._data_progress = self.loop.time()

    def _timeout_cb(self) -> None:
        if self._data_progress is not None:
            left = self._data_progress + self._timeout_duration - self.loop.time()
            if left > 0:
                self._reset_timeout(left)
                return
        super()._timeout_cb()  # type: ignore[no-untyped-call]  # untyped in aiosmtpd

    @property
    def in_transaction(self) -> bool:
        """Between MAIL and the reply to DATA: closing now would lose the client's work."""
        return self.envelope is not None and self.envelope.mail_from is not None

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """Fast path for the common `<local@domain> PARAMS` form.

        aiosmtpd parses every address with the email package's RFC 5322
        parser, a large share of its CPU; anything unusual still goes there,
        and `normalise` validates what either path returns.
        """
        match = _SIMPLE_PATH.match(arg)
        if match:
            return match.group(1), match.group(2)
        return super()._getaddr(arg)

    def _close_with(self, reply: bytes) -> None:
        # Through the stream writer: uvloop's transports are no asyncio.WriteTransport.
        if self.transport is not None:
            self._writer.write(self._with_held(reply + b"\r\n"))
            self.transport.close()

    def _with_held(self, response: bytes) -> bytes:
        """`response` after the replies held for it, which are then let go."""
        if not self._held_replies:
            return response
        self._held_replies.append(response)
        joined = b"".join(self._held_replies)
        self._held_replies.clear()
        return joined

    def say_goodbye(self) -> None:
        """Tell an idle client the service is stopping, then close."""
        self._close_with(b"421 4.3.2 Service shutting down")

    def _session_expired(self) -> None:
        # A command under way (a DATA upload) finishes; the next one gets the 421.
        if not self._running_command:
            self._close_with(SESSION_EXPIRED.encode())

    def abort(self) -> None:
        if self.transport is not None:
            self._writer.transport.abort()

    @property
    def tls_active(self) -> bool:
        return self.ctx.implicit_tls or self._tls_protocol is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        if first:
            self.ctx.session_started(self)
            self.state.relay = self.ctx.relay_network_for(self.client_ip)
            self._expiry = self.loop.call_later(
                self.ctx.limits.max_session_seconds, self._session_expired
            )
        super().connection_made(transport)

    def _cb_client_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # aiosmtpd's reader ends lines at LF; commands must end at CRLF only.
        reader.__class__ = CrlfCommandReader
        super()._cb_client_connected(reader, writer)

    def eof_received(self) -> bool:
        # aiosmtpd keeps a half-closed connection open; close it so that a
        # client that hangs up (a health check, a scanner) frees its slot.
        super().eof_received()
        return False

    def connection_lost(self, error: Exception | None) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        if self._counted:
            self._counted = False
            self.ctx.limiter.release(self.client_ip)
        summary = self.refusals.summary(self.state.principal, self.client_ip)
        if summary is not None:
            self.ctx.audit_later(summary)
        self.ctx.session_ended(self)
        super().connection_lost(error)

    async def smtp_STARTTLS(self, arg: str) -> None:
        """STARTTLS through the event loop's own TLS layer.

        aiosmtpd wraps the connection in asyncio's `SSLProtocol`, which runs the
        TLS record layer in Python on every loop; `loop.start_tls` runs it in
        uvloop's compiled code. The handshake is bounded: a client that never
        completes it would otherwise hold its session and connection slot.
        """
        if arg:
            await self.push("501 Syntax: STARTTLS")
            return
        if self.tls_context is None:
            await self.push("454 TLS not available")
            return
        if self._tls_protocol is not None:
            await self.push("503 5.5.1 TLS already active")
            return
        plain = self.transport
        assert plain is not None
        await self.push("220 Ready to start TLS")
        # RFC 3207 §4.2: nothing the client sent in clear after STARTTLS counts.
        self._reader._buffer.clear()  # type: ignore[attr-defined]
        try:
            secured = await self.loop.start_tls(
                cast(asyncio.WriteTransport, plain),
                self,
                self.tls_context,
                server_side=True,
                ssl_handshake_timeout=self.ctx.limits.tls_handshake_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            # aiosmtpd answers this by closing the session (connection_lost).
            raise TLSSetupException("TLS handshake failed") from exc
        if secured is None:  # the connection closed during the handshake
            raise TLSSetupException("TLS handshake failed")
        # What aiosmtpd's connection_made does after its own handshake. The
        # reader's buffer is not cleared again: it may already hold the
        # client's first command over TLS.
        self._original_transport = plain
        self._tls_protocol = cast(Any, secured)  # aiosmtpd only asks whether TLS is on
        self.transport = secured
        self._reader._transport = secured  # type: ignore[attr-defined]
        self._writer._transport = secured  # type: ignore[attr-defined]
        self._set_rset_state()  # type: ignore[no-untyped-call]
        self.session = self._create_session()
        self.session.peer = secured.get_extra_info("peername")
        self._reset_timeout()

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, reading the message into one buffer (gateway.smtp.data)."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        # A large message keeps its turn until its content is let go, after intake.
        turn = self.ctx.large_messages.turn()
        self._note_data_progress()
        try:
            received = await read_data(
                self._reader,
                self.data_size_limit,
                self.line_length_limit,
                turn,
                progress=self._note_data_progress,
            )
            self._data_progress = None
            reply = received.refusal
            if reply is None:
                self.envelope.content = self.envelope.original_content = received.content
                del received  # the envelope holds the only reference, and drops it below
                status = await self._call_handler_hook("DATA")
                reply = "250 OK" if status is MISSING else status
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # untyped in aiosmtpd
        except asyncio.CancelledError:  # the connection was lost during DATA
            self._writer.close()
            raise
        finally:
            self._data_progress = None
            turn.release()
        await self.push(reply)

    async def note_refusal(self, refusal: AuditEvent) -> bool:
        """Count a refusal, auditing it if it is among the session's first; True if audited."""
        self.reply_counted = True
        in_full = self.refusals.count(refusal)
        if in_full:
            await self.ctx.audit_refusal(refusal)
        return in_full

    async def push(self, status: Any) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # the session was ended; nothing more reaches the client
        if isinstance(status, str):
            status = status.encode("ascii", "replace")
        refusal = status[:1] in (b"4", b"5")
        if refusal and not _HAS_ENHANCED.match(status):
            code = status[:3].decode()
            enhanced = _ENHANCED.get(code, f"{code[0]}.0.0")
            status = status[:4] + enhanced.encode() + b" " + status[4:]
        if refusal:  # the codes only: the text may name an address
            metrics.REFUSALS.labels(status[:3].decode(), _enhanced_of(status)).inc()
        if refusal and not self.reply_counted:
            # aiosmtpd's own refusals (syntax, size, sequence) are counted here.
            await self.note_refusal(
                AuditEvent(
                    event="refused",
                    result="protocol",
                    principal=self.state.principal,
                    client_ip=self.client_ip,
                    code=int(status[:3]),
                    detail=status[4:200].decode("ascii", "replace"),
                )
            )
        self.reply_counted = False
        response = status + b"\r\n"
        # RFC 2920 §3.2: the replies to a pipelined group may go out together. A
        # positive reply to MAIL, RCPT or RSET waits while the client's next command
        # is already here: its reply, or the last of the group's (DATA's 354), takes
        # it along, in one TLS record and one packet instead of one each.
        if (
            self._command in _GROUPED
            and status[:1] == b"2"
            and cast(CrlfCommandReader, self._reader).holds_line()
        ):
            self._held_replies.append(response)
            return
        self._writer.write(self._with_held(response))
        await self._writer.drain()
        if refusal and self.refusals.exhausted:
            await self._close_after_refusals()

    async def _close_after_refusals(self) -> None:
        summary = self.refusals.summary(self.state.principal, self.client_ip, closed=True)
        if summary is not None:
            await self.ctx.audit_refusal(summary)
        self._close_with(b"421 4.7.0 Too many refused commands; closing")


def peer_ip(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if peer else ""


class ConnectionGate(asyncio.Protocol):
    """The first protocol of every connection: it takes a slot for the client, or
    turns it away with a 421 before any session is built.

    Building an aiosmtpd session costs about a millisecond of CPU (it looks its
    handler's methods up again for every connection); a client turned away at
    its limit that reconnects in a loop would pay for one each time, at the
    expense of every other client.

    Behind a load balancer (`gateway.smtp.proxied`) it comes after the PROXY
    header, and `client_ip` is the address that header named.
    """

    def __init__(self, ctx: ListenerContext, client_ip: str | None = None) -> None:
        self.ctx = ctx
        self.client_ip = client_ip

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ctx = self.ctx
        metrics.CONNECTIONS.labels(ctx.config.name).inc()
        client_ip = self.client_ip if self.client_ip is not None else peer_ip(transport)
        if not ctx.accepting:
            self._turn_away(transport, "421 4.3.2 Service shutting down; try again later")
            return
        reason = ctx.limiter.admit(client_ip)
        if reason is not None:
            reply = f"421 4.7.0 {reason}"
            self._turn_away(transport, reply)
            ctx.turned_away(client_ip, reply[4:], 421)
            return
        session = PhigateSMTP(ctx, Handler(ctx), client_ip)
        transport.set_protocol(session)
        session.connection_made(transport)

    def _turn_away(self, transport: asyncio.BaseTransport, reply: str) -> None:
        metrics.REFUSALS.labels(reply[:3], _enhanced_of(reply.encode())).inc()
        # uvloop's transports are no asyncio.WriteTransport, though they write.
        cast(asyncio.Transport, transport).write(reply.encode() + b"\r\n")
        transport.close()


class Handler:
    """aiosmtpd hooks: authentication, envelope checks and handing DATA to intake."""

    def __init__(self, ctx: ListenerContext) -> None:
        self.ctx = ctx

    async def _refuse(
        self,
        server: PhigateSMTP,
        reply: str,
        stage: str,
        sender: str | None = None,
        recipients: tuple[str, ...] = (),
    ) -> str:
        audited = await server.note_refusal(
            AuditEvent(
                event="refused",
                result=stage,
                principal=server.state.principal,
                client_ip=server.client_ip,
                sender=sender,
                recipients=recipients,
                code=int(reply[:3]),
                detail=reply[4:200],
            )
        )
        if audited:  # the rest are counted in the session's summary
            event(
                log,
                "refused",
                stage=stage,
                code=int(reply[:3]),
                client_ip=server.client_ip,
                principal=server.state.principal,
            )
        return reply

    async def handle_EHLO(
        self,
        server: PhigateSMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        responses.insert(-1, "250-ENHANCEDSTATUSCODES")
        return responses

    async def handle_exception(self, error: Exception) -> str:
        # Never echo exception text to the client or the log: it can carry content.
        if isinstance(error, BareLineEnding):
            return (
                "500 5.5.2 Syntax error: a command line holds a bare CR or LF; "
                "commands end with CRLF (RFC 5321 section 2.3.8)"
            )
        if isinstance(error, TLSSetupException):  # a client's TLS mistake, not ours
            event(log, "tls_handshake_failed", logging.WARNING)
        else:
            event(log, "session_error", logging.ERROR, error=type(error).__name__)
        return "451 4.3.0 Internal error; try again later"

    # --- AUTH --------------------------------------------------------------

    async def auth_PLAIN(self, server: PhigateSMTP, args: list[str]) -> AuthResult:
        try:
            if len(args) == 1:
                # challenge_auth hands back the client's answer already base64-decoded.
                answer = await server.challenge_auth("")
                if not isinstance(answer, bytes):
                    return AuthResult(success=False, handled=True)  # challenge_auth already replied
                decoded = answer
            else:
                decoded = b64decode(args[1], validate=True)
            _authzid, login, password = decoded.split(b"\x00")
        except (Base64Error, ValueError):
            await server.push("501 5.5.2 Cannot decode AUTH PLAIN data")
            return AuthResult(success=False, handled=True)
        return await self._check(server, login, password)

    async def auth_LOGIN(self, server: PhigateSMTP, args: list[str]) -> AuthResult:
        try:
            if len(args) == 1:
                login = await server.challenge_auth(server.AuthLoginUsernameChallenge)
            else:
                login = b64decode(args[1], validate=True)
            if login is MISSING:
                return AuthResult(success=False, handled=True)  # challenge_auth already replied
            password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
            if password is MISSING:
                return AuthResult(success=False, handled=True)  # challenge_auth already replied
        except (Base64Error, ValueError):
            await server.push("501 5.5.2 Cannot decode AUTH LOGIN data")
            return AuthResult(success=False, handled=True)
        return await self._check(server, login, password)

    async def _check(self, server: PhigateSMTP, login: Any, password: Any) -> AuthResult:
        try:
            return await self._verify(server, login, password)
        except Exception as exc:  # the database gone: no one is let in unchecked
            event(log, "auth_unavailable", logging.ERROR, error=type(exc).__name__)
            await server.push("454 4.7.0 Temporary authentication failure; try again later")
            return AuthResult(success=False, handled=True)

    async def _verify(self, server: PhigateSMTP, login: Any, password: Any) -> AuthResult:
        user = bytes(login).decode("utf-8", "replace")[:64]
        secret = bytes(password).decode("utf-8", "replace")
        ip = server.client_ip
        guard = self.ctx.guard
        if await guard.locked(user, ip):
            metrics.AUTH.labels("locked").inc()
            # As slow as the slowest failure: a locked client that keeps trying gets
            # one answer per auth_backoff_max on each connection, not hundreds a second
            # (each with audit rows, and a TLS handshake per reconnection).
            await asyncio.sleep(guard.limits.auth_backoff_max)
            await server.note_refusal(
                AuditEvent(event="auth", result="locked", principal=user, client_ip=ip, code=454)
            )
            await server.push("454 4.7.0 Too many failed AUTH attempts; try again later")
            return AuthResult(success=False, handled=True)
        principal = await self.ctx.authenticator.verify(user, secret)
        if principal is None:
            metrics.AUTH.labels("failed").inc()
            delay = await guard.failure(user, ip)
            event(log, "auth_failed", logging.WARNING, principal=user, client_ip=ip)
            await asyncio.sleep(delay)
            await server.note_refusal(
                AuditEvent(event="auth", result="failed", principal=user, client_ip=ip, code=535)
            )
            await server.push("535 5.7.8 Authentication credentials invalid")
            return AuthResult(success=False, handled=True)
        metrics.AUTH.labels("ok").inc()
        await guard.success(user, ip)
        await self.ctx.audit(
            AuditEvent(event="auth", result="ok", principal=principal.name, client_ip=ip, code=235)
        )
        # Only once audited: a session whose success was not recorded stays anonymous.
        server.state.principal = principal.name
        server.state.domains = principal.domains
        server.state.from_domains = principal.from_domains
        return AuthResult(success=True, auth_data=principal.name)

    # --- envelope ----------------------------------------------------------

    def _sender_domains(self, server: PhigateSMTP) -> tuple[str, tuple[str, ...]] | None:
        """(who, allowed domains) for an authenticated or allow-listed client."""
        if server.state.principal is not None:
            return f'principal "{server.state.principal}"', server.state.domains
        relay = server.state.relay
        if relay is not None:
            return f'network "{relay.name}"', tuple(relay.domains)
        return None

    async def handle_MAIL(
        self,
        server: PhigateSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.ctx.config.tls != "none" and self.ctx.config.require_tls and not server.tls_active:
            return await self._refuse(
                server, "530 5.7.0 Must issue a STARTTLS command first", "mail"
            )
        allowed = self._sender_domains(server)
        server.state.unsubscribe_only = allowed is None and self.ctx.unsubscribe is not None
        # An opt-out is a few lines: an unauthenticated client gets no room to buffer more.
        limits = self.ctx.limits
        server.data_size_limit = (
            limits.max_unsubscribe_message_size
            if server.state.unsubscribe_only
            else limits.max_message_size
        )
        if server.state.unsubscribe_only:
            envelope.mail_from = address.strip("<>")  # whoever asks; only opt-outs follow
            return "250 2.1.0 Sender OK"
        if allowed is None:
            return await self._refuse(
                server, "530 5.7.0 Authentication required (AUTH over TLS)", "mail"
            )
        who, domains = allowed
        if address in ("", "<>"):
            return await self._refuse(
                server, f"550 5.7.1 Null sender not permitted for {who}", "mail"
            )
        try:
            sender = normalise(address)
        except AddressError as exc:
            return await self._refuse(server, f"553 5.1.7 Bad sender address: {exc}", "mail")
        refusal = sender_refusal(sender, who, domains)
        if refusal is not None:
            return await self._refuse(server, refusal, "mail", sender=sender)
        refusal = await self._over_limit(server, 0)
        if refusal is not None:
            return refusal
        envelope.mail_from = sender
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def _over_limit(self, server: PhigateSMTP, recipients: int) -> str | None:
        """The refusal of a message to `recipients` recipients over the sender's sending
        limits, as far as this process knows (the store's check after DATA is exact)."""
        rates, key = self.ctx.rates, server.state.rate_key
        if rates is None or key is None:
            return None
        breach = await rates.early(self.ctx.db, key, recipients)
        if breach is None:
            return None
        code, text = breach.smtp
        return await self._refuse(server, f"{code} {text}", "rcpt" if recipients else "mail")

    async def handle_RCPT(
        self,
        server: PhigateSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        sender = envelope.mail_from
        if len(envelope.rcpt_tos) >= self.ctx.limits.max_recipients:
            return await self._refuse(
                server,
                f"452 4.5.3 Too many recipients (at most {self.ctx.limits.max_recipients} per "
                "message); send the rest in another message",
                "rcpt",
                sender=sender,
            )
        try:
            recipient = normalise(address)
        except AddressError as exc:
            return await self._refuse(
                server, f"553 5.1.3 Bad recipient address: {exc}", "rcpt", sender=sender
            )
        if server.state.unsubscribe_only:
            assert self.ctx.unsubscribe is not None
            problem = await self.ctx.unsubscribe.problem(recipient)
            if problem is not None:  # never a relay: nothing else without AUTH
                return await self._refuse(server, problem, "rcpt", sender=sender)
        refusal = await self._over_limit(server, len(envelope.rcpt_tos) + 1)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(recipient)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: PhigateSMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        sender = envelope.mail_from or ""
        recipients = tuple(envelope.rcpt_tos)
        problem = content_problem(content)
        if problem is not None:
            return await self._refuse(server, problem, "data", sender=sender, recipients=recipients)
        if server.state.unsubscribe_only:
            assert self.ctx.unsubscribe is not None
            try:
                await self.ctx.unsubscribe.record(recipients)
            except Exception:
                event(log, "unsubscribe_failed", logging.ERROR)
                return "451 4.3.0 Could not record the unsubscribe request; try again later"
            return "250 2.0.0 Unsubscribed"
        refusal = author_refusal(content, server.state.author_domains)
        if refusal is not None:  # no DKIM-aligned mail as another organisation
            return await self._refuse(server, refusal, "data", sender=sender, recipients=recipients)
        submission = Submission(
            listener=self.ctx.config.name,
            principal=server.state.principal,
            client_ip=server.client_ip,
            helo=session.host_name,
            tls=server.tls_active,
            authenticated=server.state.principal is not None,
            sender=sender,
            recipients=recipients,
            content=content,
            rate_key=server.state.rate_key,
        )
        reply = await self.ctx.intake.accept(submission)
        return str(reply)
