"""Sending one prepared message over SMTP: DKIM-sign it last, then capture it
(sandbox), relay it (smarthost) or take each recipient domain's MX hosts in
order, with the transport security each domain asks for (MTA-STS, DANE, the
policy's transport rules), keeping each TLS session for TLS reports."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TypeVar

from gateway import metrics
from gateway.config import DeliveryConfig, parse_host_port
from gateway.delivery.attempt import Attempt
from gateway.delivery.client import (
    MODE_UNAVAILABLE,
    HopError,
    RecipientResult,
    SmtpSender,
    TlsEvidence,
    TlsPolicy,
)
from gateway.delivery.mx import MxResolver, RouteError
from gateway.delivery.security import (
    NO_POLICY,
    DomainSecurity,
    HopSecurity,
    TransportSecurity,
    required_tls,
)
from gateway.dkim.keys import DkimError
from gateway.dkim.sign import DkimSigner
from gateway.mail.addresses import domain_of
from gateway.policy.engine import CompiledPolicy
from gateway.store import sandbox
from gateway.store.database import Database
from gateway.store.keyring import Keyring

_T = TypeVar("_T")
# Messages above this size are signed in a thread.
_INLINE_BYTES = 256 * 1024


def _verification(tls: TlsEvidence | None) -> str:
    """How a session's peer was authenticated, as a metric label."""
    if tls is None:
        return "none"
    return "unverified" if tls.verified == "no" else tls.verified


async def off_loop(content: bytes, func: Callable[..., _T], *args: object) -> _T:
    """Run CPU-heavy work on big messages in a thread so the loop keeps serving."""
    if len(content) > _INLINE_BYTES:
        return await asyncio.to_thread(func, *args)
    return func(*args)


class Transport:
    def __init__(
        self,
        config: DeliveryConfig,
        db: Database,
        keyring: Keyring,
        sender: SmtpSender,
        security: TransportSecurity,
        resolver: MxResolver,
        signer: DkimSigner,
        policy: Callable[[], CompiledPolicy | None] = lambda: None,
    ) -> None:
        """`db` and `keyring` hold what mode sandbox captures; `policy` gives the
        current policy's transport rules."""
        self.config = config
        self.db = db
        self.keyring = keyring
        self.sender = sender
        self.security = security
        self.resolver = resolver
        self.signer = signer
        self.policy = policy

    async def close(self) -> None:
        self.sender.close()
        await self.security.aclose()

    async def send(
        self, attempt: Attempt, mode: str, recipients: list[str], content: bytes
    ) -> list[RecipientResult]:
        """Sign and send `content` to `recipients`; mode `tls` requires verified TLS
        to the next hop, any other the configured delivery TLS."""
        # DKIM signs the exact bytes that leave, after every other change.
        try:
            sign = partial(self.signer.sign, permitted=attempt.signing_domains)
            content = await off_loop(content, sign, content)
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
                    security = await self.security.for_domain(
                        domain, base, rules[domain], attempt.fresh_dns
                    )
                else:
                    security = DomainSecurity(domain, base, None, False, None)
                results += await self._send_mx(attempt, security, rcpts, content)
        return [replace(r, mode=mode) for r in results]

    async def _send_mx(
        self,
        attempt: Attempt,
        security: DomainSecurity,
        recipients: list[str],
        content: bytes,
    ) -> list[RecipientResult]:
        domain = security.domain
        try:
            hops = await self.resolver.hops(domain, attempt.fresh_dns)
        except RouteError as exc:
            code = 550 if exc.permanent else None
            status = "5.1.2" if exc.permanent else "4.4.3"
            return [RecipientResult(r, code, status, exc.message, None) for r in recipients]
        last: list[RecipientResult] = []
        for hop in hops:
            hop_security = await self.security.for_hop(
                security, hop.host, hop.port, attempt.fresh_dns
            )
            if hop_security.policy is None:
                status = "4.4.3" if hop_security.temporary else MODE_UNAVAILABLE
                last = [
                    RecipientResult(r, None, status, hop_security.refusal, hop.host)
                    for r in recipients
                ]
                continue
            try:
                addresses = await self.resolver.addresses(hop.host, attempt.fresh_dns)
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
        attempt: Attempt,
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
                if exc.tls_failure:
                    metrics.TLS_SESSIONS.labels("failed").inc()
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
            metrics.TLS_SESSIONS.labels(_verification(tls)).inc()
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
