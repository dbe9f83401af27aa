"""Delivery workers: claim due jobs, send each message once per next hop, record results.

A dispatcher leases jobs in batches and hands them, grouped by message, to a
fixed number of worker tasks. Results, deferrals, bounces and the DSN that a
bounce produces are committed in one transaction with their audit events.
Leases expire, so jobs held by a worker that died are claimed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.config import Settings, parse_host_port, relay_network_for
from gateway.consent.links import UnsubscribeLinks, load_key
from gateway.consent.purpose import MARKETING
from gateway.consent.source import RegistryConsent
from gateway.delivery import tlsrpt_send
from gateway.delivery.bounce import BounceMaker, queue_dsn
from gateway.delivery.client import (
    MODE_UNAVAILABLE,
    HopError,
    RecipientResult,
    SmtpSender,
    TlsPolicy,
)
from gateway.delivery.dsn import FailedRecipient, is_null_sender
from gateway.delivery.footer import add_footer
from gateway.delivery.mx import MxResolver, RouteError
from gateway.delivery.rewrite import apply_rewrite, footer_of, with_headers
from gateway.delivery.security import (
    NO_POLICY,
    DomainSecurity,
    HopSecurity,
    TransportSecurity,
    required_tls,
)
from gateway.delivery.tlsrpt import TlsSession, record_sessions
from gateway.dkim.keys import DkimError
from gateway.dkim.sign import DkimSigner
from gateway.logs import event
from gateway.mail.addresses import domain_of, normalise_domain
from gateway.policy.engine import CompiledPolicy
from gateway.smime.certs.store import CertStore
from gateway.smime.envelope import SmimeEncryptor
from gateway.store import queue, sandbox
from gateway.store.database import Database
from gateway.store.keyring import Keyring

log = logging.getLogger("gateway.delivery")

_T = TypeVar("_T")
# Consent states that stop queued marketing mail.
_WITHDRAWN = frozenset({"revoked", "expired", "opted_out"})
# Messages above this size are signed and encrypted in a thread.
_INLINE_BYTES = 256 * 1024
# The audit trail's detail column.
_DETAIL_CHARS = 255


@dataclass(frozen=True)
class Delivery:
    """The claimed jobs of one message, and the message (None once deleted)."""

    queue_id: str
    jobs: tuple[queue.ClaimedJob, ...]
    message: queue.MessageForDelivery | None = None


@dataclass
class _Attempt:
    """One delivery attempt of one message: its results and the TLS sessions it made."""

    sender: str
    queue_id: str
    signing_domains: frozenset[str]  # DKIM signs only as one of these
    # RFC 8460 §5.3.1: TLS reports must get through even where the recipient's
    # MTA-STS or DANE fails, and their own sessions are not counted.
    honours_tls_policies: bool = True
    results: list[RecipientResult] = field(default_factory=list)
    sessions: list[TlsSession] = field(default_factory=list)

    def session(
        self,
        domain: str,
        security: HopSecurity,
        host: str,
        address: str,
        failure: str | None,
        local_ip: str | None,
    ) -> None:
        if not self.honours_tls_policies:
            return
        self.sessions.append(
            TlsSession(
                policy_domain=domain,
                policy_type=security.reported.type,
                policy_strings=security.reported.strings,
                mx_host=host,
                receiving_ip=address,
                failure=failure,
                sending_ip=local_ip,
            )
        )


def smime_encryptor(settings: Settings) -> SmimeEncryptor:
    """Raises SmimeSetupError when the signing certificate or trust bundle is unusable."""
    return SmimeEncryptor(settings.smime, CertStore.for_settings(settings), Path(settings.data_dir))


def audit_detail(result: RecipientResult) -> str:
    """Metadata of one delivery attempt for the audit trail: mode, TLS evidence,
    S/MIME details, next hop and its reply (shortened to fit)."""
    parts = [f"mode={result.mode}"]
    if result.tls is not None:
        parts.append(result.tls.text())
    if result.note:
        parts.append(result.note)
    if result.remote_host:
        parts.append(f"mx={result.remote_host}")
    head = " ".join(parts)
    return f"{head}: {result.reply}"[:_DETAIL_CHARS]


def backoff(schedule: Sequence[float], attempts_done: int, jitter: float) -> float:
    base = schedule[min(max(attempts_done - 1, 0), len(schedule) - 1)]
    return base * random.uniform(1 - jitter, 1 + jitter)


def crashed(queue_id: str, recipients: Sequence[str], exc: Exception) -> list[RecipientResult]:
    """An unexpected error delivering to `recipients`, as a deferral like any other:
    retried, counted, and bounced at max_queue_lifetime. Only the error's type is
    logged and recorded: its text may quote the message."""
    error = type(exc).__name__
    event(log, "delivery_crashed", logging.ERROR, queue_id=queue_id, error=error)
    reply = f"delivery failed with an internal error ({error})"
    return [RecipientResult(r, None, "4.3.0", reply, None) for r in recipients]


class DeliveryService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        keyring: Keyring,
        policy: Callable[[], CompiledPolicy | None] = lambda: None,
    ) -> None:
        config = settings.delivery
        self.config = config
        self.db = db
        self.keyring = keyring
        self.hostname = settings.hostname
        self.postmaster = settings.postmaster_address
        self.policy = policy
        self.bounces = BounceMaker(keyring, self.hostname, self.postmaster)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{time.time():.0f}"
        self.sender = SmtpSender(
            self.hostname, config.ca_file, config.connect_timeout, config.command_timeout
        )
        self.security = TransportSecurity(config, settings.path("mta-sts"))
        self.signer = DkimSigner(settings.dkim, settings.path(settings.dkim.keys_dir))
        self.relay_networks = settings.relay_networks
        self.own_domains = frozenset([normalise_domain(domain_of(self.postmaster))])
        self.smime = smime_encryptor(settings)
        self.consent = RegistryConsent(db, settings.consent)
        self.links = UnsubscribeLinks(
            load_key(settings.path(settings.keys_dir)),
            settings.unsubscribe,
            settings.hostname,
            settings.web.public_url,
        )
        self.resolver = MxResolver(config.nameservers, port=config.mx_port)
        self.reports_tls = settings.tls_reports.enabled
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._work: asyncio.Queue[Delivery] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = 0
        self._waiting_for_workers = False
        # Jobs claimed and not yet finished: the only leases renewed.
        self._held: set[int] = set()

    def notify(self) -> None:
        """New jobs were committed: claim without waiting for the next poll."""
        self._wakeup.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._dispatch(), name="delivery-dispatch"),
            asyncio.create_task(self._renew_leases(), name="delivery-leases"),
        ]
        self._tasks += [
            asyncio.create_task(self._work_loop(), name=f"delivery-{n}")
            for n in range(self.config.workers)
        ]

    async def stop(self, grace: float = 30.0) -> None:
        """Stop claiming, let in-flight deliveries finish, hand back unstarted leases."""
        self._stopping = True
        self._wakeup.set()
        self._tasks[1].cancel()  # lease renewal sleeps; nothing to finish there
        for _ in range(self.config.workers):
            self._work.put_nowait(Delivery("", ()))  # one stop marker per worker
        _done, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        released = await self.db.write(
            lambda conn: queue.release_leases(conn, self.owner, time.time())
        )
        self.sender.close()
        await self.security.aclose()
        event(log, "delivery_stopped", released=released)

    # --- claiming ------------------------------------------------------------

    async def _dispatch(self) -> None:
        workers = self.config.workers
        while not self._stopping:
            free = workers - self._busy - self._work.qsize()
            claimed: list[Delivery] = []
            if free > 0:
                try:
                    claimed = await self._claim(free * 4)
                except Exception:
                    event(log, "claim_failed", logging.ERROR)
            if self._stopping:
                break
            for delivery in claimed:
                self._held.update(job.id for job in delivery.jobs)
                self._work.put_nowait(delivery)
            if not claimed or free <= 0:
                self._waiting_for_workers = free <= 0
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.config.poll_interval)

    async def _renew_leases(self) -> None:
        lease = self.config.lease_seconds
        while not self._stopping:
            await asyncio.sleep(lease / 3)
            if self._held:
                until = time.time() + lease
                held = list(self._held)
                try:
                    await self.db.write(
                        partial(queue.renew_leases, owner=self.owner, until=until, job_ids=held)
                    )
                except Exception:
                    event(log, "lease_renewal_failed", logging.ERROR)

    async def _claim(self, limit: int) -> list[Delivery]:
        """Lease due jobs and load their messages in one transaction, grouped by message."""
        now = time.time()
        lease = self.config.lease_seconds

        def claim(conn: Connection) -> list[Delivery]:
            jobs = queue.claim(conn, self.owner, now, lease, limit)
            by_message: dict[str, list[queue.ClaimedJob]] = defaultdict(list)
            for job in jobs:
                by_message[job.queue_id].append(job)
            loaded = queue.load_messages(conn, list(by_message)) if jobs else {}
            return [Delivery(q, tuple(group), loaded.get(q)) for q, group in by_message.items()]

        return await self.db.write(claim)

    async def _work_loop(self) -> None:
        while True:
            delivery = await self._work.get()
            if not delivery.jobs:
                return
            if self._stopping:
                continue  # its lease is released by stop()
            self._busy += 1
            try:
                await self._deliver(delivery)
            except Exception as exc:
                await self._record_crash(delivery, exc)
            finally:
                self._held.difference_update(job.id for job in delivery.jobs)
                self._busy -= 1
                if self._waiting_for_workers:  # otherwise new mail wakes the dispatcher
                    self._wakeup.set()

    # --- one message -----------------------------------------------------------

    async def _deliver(self, delivery: Delivery) -> None:
        message = delivery.message
        if message is None or message.sealed is None:
            return  # deleted while queued; the delete already settled its jobs
        content = self.keyring.open(message.sealed, delivery.queue_id.encode())
        attempt = _Attempt(
            message.sender,
            delivery.queue_id,
            self._signing_domains(message),
            message.listener != tlsrpt_send.LISTENER,
        )
        jobs = await self._still_consented(attempt, delivery.jobs)
        # Recipients that leave the same way with the same header changes share
        # one transaction; the others get their own. Marketing goes one
        # recipient at a time: each gets its own unsubscribe link.
        plans: dict[tuple[str, str | None, str], list[str]] = defaultdict(list)
        for job in jobs:
            plans[(job.route, job.rewrite, job.recipient if job.purpose else "")].append(
                job.recipient
            )
        for (route, rewrite, marketed_to), recipients in plans.items():
            try:
                body = apply_rewrite(content, rewrite)
                if marketed_to:
                    body = self._with_unsubscribe(body, marketed_to, footer_of(rewrite))
                attempt.results += await self._send_by_modes(
                    attempt, route.split(","), recipients, body
                )
            except Exception as exc:  # the other transactions' results still count
                attempt.results += crashed(delivery.queue_id, recipients, exc)
        await self._record(message, delivery, attempt)

    def _signing_domains(self, message: queue.MessageForDelivery) -> frozenset[str]:
        """The domains the message's sender may use, as they are now: its principal's
        (sender and extra From domains), else its relay network's. phigate's own
        mail (DSNs, TLS reports) comes from the postmaster's domain."""
        if message.is_dsn:
            return self.own_domains
        if message.principal is not None:
            return frozenset(message.principal_domains)
        relay = relay_network_for(self.relay_networks, message.client_ip)
        return frozenset(relay.author_domains if relay is not None else ())

    async def _record_crash(self, delivery: Delivery, exc: Exception) -> None:
        """Defer every job of a delivery that failed outside a transaction (opening
        the message, checking consent, recording results). If even that cannot be
        recorded, the leases lapse and the jobs are claimed again."""
        results = crashed(delivery.queue_id, [job.recipient for job in delivery.jobs], exc)
        message = delivery.message
        if message is None:
            return
        attempt = _Attempt(message.sender, delivery.queue_id, frozenset(), results=results)
        try:
            await self._record(message, delivery, attempt)
        except Exception as again:
            event(
                log,
                "delivery_crash_not_recorded",
                logging.ERROR,
                queue_id=delivery.queue_id,
                error=type(again).__name__,
            )

    async def _still_consented(
        self, attempt: _Attempt, jobs: Sequence[queue.ClaimedJob]
    ) -> list[queue.ClaimedJob]:
        """The jobs to send now. A marketing recipient whose consent was revoked,
        expired or opted out while the message was queued is not sent to: the job
        bounces (audited; content-free DSN to the sender). If consent cannot be
        read, marketing waits (fail closed)."""
        by_purpose: dict[str, list[queue.ClaimedJob]] = defaultdict(list)
        for job in jobs:
            if job.purpose:
                by_purpose[job.purpose].append(job)
        stopped: set[int] = set()
        for purpose, group in by_purpose.items():
            try:
                states = await self.consent.states([j.recipient for j in group], purpose)
            except Exception:
                event(log, "consent_check_failed", logging.ERROR, queue_id=attempt.queue_id)
                reason = "consent could not be checked; will retry"
                attempt.results += [
                    RecipientResult(j.recipient, None, "4.3.0", reason, None, "consent")
                    for j in group
                ]
                stopped.update(j.id for j in group)
                continue
            for job in group:
                state = states.get(job.recipient, "none")
                if state in _WITHDRAWN:
                    reply = f"not sent: consent {state.replace('_', ' ')} while queued"
                    attempt.results.append(
                        RecipientResult(job.recipient, 550, "5.7.1", reply, None, "consent")
                    )
                    stopped.add(job.id)
        return [job for job in jobs if job.id not in stopped]

    def _with_unsubscribe(self, content: bytes, recipient: str, footer: str | None) -> bytes:
        """RFC 8058 one-click unsubscribe from all marketing, by URL and by mail, and
        the CAN-SPAM footer where the policy asks for one."""
        url, mailto = self.links.links(recipient, MARKETING, time.time())
        if footer is not None:
            content = add_footer(content, footer, url)
        return with_headers(
            content,
            [
                ("List-Unsubscribe", f"<{url}>, <{mailto}>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ],
        )

    async def _send_by_modes(
        self, attempt: _Attempt, modes: list[str], recipients: list[str], content: bytes
    ) -> list[RecipientResult]:
        """Try the policy's modes in order; a recipient moves on to the next mode only
        when the current one is unavailable for it (no verified TLS, no certificate,
        or not built here)."""
        done: list[RecipientResult] = []
        waiting = recipients
        unavailable: list[RecipientResult] = []
        for mode in modes:
            if mode in ("standard", "tls"):
                outcome = await self._route_and_send(attempt, mode, waiting, content)
            elif mode == "smime":
                outcome = await self._send_encrypted(attempt, waiting, content)
            else:
                continue  # portal: not available in this version
            unavailable = [r for r in outcome if r.mode_unavailable]
            done += [r for r in outcome if not r.mode_unavailable]
            waiting = [r.recipient for r in unavailable]
            if not waiting:
                return done
        if unavailable:
            return done + unavailable  # deferred with the last mode's reason
        return done + [
            RecipientResult(
                r,
                None,
                "4.7.0",
                f"no delivery mode of the policy ({', '.join(modes)}) is available here",
                None,
                modes[-1],
            )
            for r in waiting
        ]

    async def _send_encrypted(
        self, attempt: _Attempt, recipients: list[str], content: bytes
    ) -> list[RecipientResult]:
        """S/MIME: one encrypted copy per recipient, sent like mode `standard`."""
        results: list[RecipientResult] = []
        for rcpt in recipients:
            # In a thread: the certificate store may be rescanning its directory.
            encrypted = await asyncio.to_thread(self.smime.encrypt_for, content, rcpt)
            if encrypted is None:
                results.append(
                    RecipientResult(
                        rcpt,
                        None,
                        MODE_UNAVAILABLE,
                        "no usable S/MIME certificate for the recipient",
                        None,
                        "smime",
                    )
                )
                continue
            sent = await self._route_and_send(attempt, "standard", [rcpt], encrypted.content)
            note = f"smime={encrypted.algorithm} rcpt-cert=sha256:{encrypted.cert_sha256}"
            results += [replace(r, mode="smime", note=note) for r in sent]
        return results

    async def _off_loop(self, content: bytes, func: Callable[..., _T], *args: object) -> _T:
        """Run CPU-heavy work on big messages in a thread so the loop keeps serving."""
        if len(content) > _INLINE_BYTES:
            return await asyncio.to_thread(func, *args)
        return func(*args)

    async def _route_and_send(
        self, attempt: _Attempt, mode: str, recipients: list[str], content: bytes
    ) -> list[RecipientResult]:
        # DKIM signs the exact bytes that leave, after every other change.
        try:
            sign = partial(self.signer.sign, permitted=attempt.signing_domains)
            content = await self._off_loop(content, sign, content)
        except DkimError as exc:  # never sent unsigned: retried once the key is fixed
            return [
                RecipientResult(r, None, "4.3.0", f"DKIM signing failed: {exc}", None, mode)
                for r in recipients
            ]
        base = TlsPolicy("verify") if mode == "tls" else TlsPolicy.from_mode(self.config.tls)
        if self.config.mode == "sandbox":
            await self._capture(attempt.queue_id, attempt.sender, recipients, content)
            return [
                RecipientResult(r, 250, "2.0.0", "captured in sandbox", "sandbox", mode)
                for r in recipients
            ]
        by_domain: dict[str, list[str]] = defaultdict(list)
        for rcpt in recipients:
            by_domain[domain_of(rcpt)].append(rcpt)
        policy = self.policy() if attempt.honours_tls_policies else None
        rules = {d: policy.transport_for(d) if policy is not None else None for d in by_domain}
        if self.config.mode == "smarthost":
            assert self.config.smarthost is not None
            host, port = parse_host_port(self.config.smarthost)
            # The recipients' transport rules cannot check their own servers from
            # here, but the hop that carries their mail must be verified at least.
            required = required_tls(base, rules.values())
            results = await self._send_via(
                attempt, host, port, [host], recipients, content, HopSecurity(required, NO_POLICY)
            )
        else:
            results = []
            for domain, rcpts in by_domain.items():
                if attempt.honours_tls_policies:
                    security = await self.security.for_domain(domain, base, rules[domain])
                else:
                    security = DomainSecurity(domain, base, None, False, None)
                results += await self._send_mx(attempt, security, rcpts, content)
        return [replace(r, mode=mode) for r in results]

    async def _send_mx(
        self,
        attempt: _Attempt,
        security: DomainSecurity,
        recipients: list[str],
        content: bytes,
    ) -> list[RecipientResult]:
        domain = security.domain
        try:
            hops = await self.resolver.hops(domain)
        except RouteError as exc:
            code = 550 if exc.permanent else None
            status = "5.1.2" if exc.permanent else "4.4.3"
            return [RecipientResult(r, code, status, exc.message, None) for r in recipients]
        last: list[RecipientResult] = []
        for hop in hops:
            hop_security = await self.security.for_hop(security, hop.host, hop.port)
            if hop_security.policy is None:
                status = "4.4.3" if hop_security.temporary else MODE_UNAVAILABLE
                last = [
                    RecipientResult(r, None, status, hop_security.refusal, hop.host)
                    for r in recipients
                ]
                continue
            try:
                addresses = await self.resolver.addresses(hop.host)
            except RouteError as exc:
                last = [
                    RecipientResult(r, None, "4.4.3", exc.message, hop.host) for r in recipients
                ]
                continue
            outcome = await self._send_via(
                attempt, hop.host, hop.port, addresses, recipients, content, hop_security, domain
            )
            if any(r.code is not None for r in outcome):
                return outcome  # the hop answered: its answer stands
            last = outcome
        return last or [
            RecipientResult(r, None, "4.4.4", f"no reachable mail server for {domain}", None)
            for r in recipients
        ]

    async def _send_via(
        self,
        attempt: _Attempt,
        name: str,
        port: int,
        addresses: list[str],
        recipients: list[str],
        content: bytes,
        security: HopSecurity,
        report_domain: str | None = None,
    ) -> list[RecipientResult]:
        """Send to the first address of a host that answers. With `report_domain`
        (delivery to a domain's MX), each TLS session is kept for TLS reports."""
        failure = HopError(f"no address for {name}")
        policy = security.policy
        assert policy is not None
        for address in addresses:
            try:
                results = await self.sender.send(
                    address, port, name, attempt.sender, recipients, content, policy
                )
            except HopError as exc:
                failure = exc
                if report_domain and exc.tls_failure:
                    attempt.session(
                        report_domain, security, name, address, exc.tls_failure, exc.local_ip
                    )
                    if security.fallback is not None:
                        # MTA-STS testing: reported; the domain's requirement follows.
                        return await self._send_via(
                            attempt,
                            name,
                            port,
                            [address],
                            recipients,
                            content,
                            HopSecurity(security.fallback, security.reported),
                        )
                if exc.code is not None:
                    break  # the server answered; another address would answer the same
                continue
            tls = results[0].tls if results else None
            if report_domain and tls is not None:
                attempt.session(report_domain, security, name, address, None, tls.local_ip)
            return results
        return [
            RecipientResult(r, failure.code, failure.status, failure.reason, name)
            for r in recipients
        ]

    async def _capture(
        self, queue_id: str, sender: str, recipients: list[str], content: bytes
    ) -> None:
        sealed = self.keyring.seal(content, sandbox.sandbox_context(queue_id).encode())
        now = time.time()
        await self.db.write(
            lambda conn: sandbox.capture(
                conn, queue_id, sender, recipients, len(content), sealed, now
            )
        )

    # --- results ---------------------------------------------------------------

    async def _record(
        self,
        message: queue.MessageForDelivery,
        delivery: Delivery,
        attempt: _Attempt,
    ) -> None:
        results = attempt.results
        now = time.time()
        jobs_by_rcpt = {job.recipient: job for job in delivery.jobs}
        expired = now - message.received_at >= self.config.max_queue_lifetime
        bounced: list[FailedRecipient] = []
        plan: list[tuple[queue.ClaimedJob, RecipientResult, str, float | None]] = []
        for result in results:
            job = jobs_by_rcpt[result.recipient]
            if result.delivered:
                plan.append((job, result, queue.DELIVERED, None))
            elif result.permanent or expired:
                if not result.permanent:
                    result = RecipientResult(
                        result.recipient,
                        result.code,
                        "4.4.7",
                        f"message expired in queue; last error: {result.reply}",
                        result.remote_host,
                    )
                plan.append((job, result, queue.BOUNCED, None))
                bounced.append(
                    FailedRecipient(
                        recipient=result.recipient,
                        status=result.status if result.status[0] in "45" else "5.0.0",
                        diagnostic=f"smtp; {result.code} {result.reply}"
                        if result.code
                        else result.reply,
                        remote_mta=result.remote_host,
                        last_attempt=datetime.fromtimestamp(now, UTC),
                    )
                )
            else:
                delay = backoff(
                    self.config.retry_schedule, job.attempts + 1, self.config.retry_jitter
                )
                plan.append((job, result, queue.QUEUED, now + delay))
        dsn = None
        if bounced and not message.is_dsn and not is_null_sender(message.sender):
            dsn = self.bounces.dsn(
                queue_id=message.queue_id,
                sender=message.sender,
                message_id=message.message_id,
                received_at=message.received_at,
                failed=bounced,
                now=now,
            )

        def commit(conn: Connection) -> None:
            events = []
            for job, result, state, next_at in plan:
                changed = queue.finish_job(
                    conn,
                    job.id,
                    self.owner,
                    state=state,
                    now=now,
                    attempts_done=job.attempts + 1,
                    code=result.code,
                    status=result.status,
                    reply=result.reply,
                    remote_host=result.remote_host,
                    next_attempt_at=next_at,
                )
                if not changed:
                    continue  # lease lost: another worker owns this job now
                events.append(
                    AuditEvent(
                        event={queue.DELIVERED: "delivered", queue.BOUNCED: "bounced"}.get(
                            state, "deferred"
                        ),
                        result=result.status,
                        queue_id=message.queue_id,
                        principal=message.principal,
                        sender=message.sender,
                        recipients=(result.recipient,),
                        code=result.code,
                        detail=audit_detail(result),
                        ts=now,
                    )
                )
            if dsn is not None and any(e.event == "bounced" for e in events):
                events.append(queue_dsn(conn, dsn, message.queue_id, message.sender, now))
            trail.append(conn, events)
            if self.reports_tls:
                record_sessions(conn, attempt.sessions, now)
            queue.drop_finished_content(conn, message.queue_id)

        await self.db.write(commit)
        for job, result, state, _next in plan:
            event(
                log,
                state if state != queue.QUEUED else "deferred",
                queue_id=message.queue_id,
                job=job.id,
                code=result.code,
                status=result.status,
            )
        if dsn is not None:
            self.notify()
