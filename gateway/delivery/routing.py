"""Routing across the delivery modes a policy names in `via`, in order.

A mode is one object behind one interface (`Mode`), chosen by name: `standard`
and `tls` send over SMTP, `smime` encrypts to the recipient's certificate and
sends like `standard`, `portal` (gateway.delivery.portal) keeps the message
for pickup and mails a notice. A mode not built here is skipped. A
recipient moves on to the next mode only when the current one answers
MODE_UNAVAILABLE for it (no verified TLS, no certificate).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from gateway.delivery.attempt import Attempt
from gateway.delivery.client import MODE_UNAVAILABLE, RecipientResult
from gateway.delivery.transport import Transport
from gateway.smime.envelope import SmimeEncryptor


class Mode(Protocol):
    async def send(
        self, attempt: Attempt, recipients: list[str], content: bytes
    ) -> list[RecipientResult]:
        """One result per recipient; MODE_UNAVAILABLE hands it to the next mode."""
        ...


@dataclass(frozen=True)
class SmtpMode:
    """`standard` (the configured delivery TLS) or `tls` (verified TLS to the next hop)."""

    name: str
    transport: Transport

    async def send(
        self, attempt: Attempt, recipients: list[str], content: bytes
    ) -> list[RecipientResult]:
        return await self.transport.send(attempt, self.name, recipients, content)


@dataclass(frozen=True)
class SmimeMode:
    """S/MIME: one encrypted copy per recipient, sent like mode `standard`."""

    encryptor: SmimeEncryptor
    transport: Transport

    async def send(
        self, attempt: Attempt, recipients: list[str], content: bytes
    ) -> list[RecipientResult]:
        results: list[RecipientResult] = []
        for rcpt in recipients:
            # In a thread: the certificate store may be rescanning its directory.
            encrypted = await asyncio.to_thread(self.encryptor.encrypt_for, content, rcpt)
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
            sent = await self.transport.send(attempt, "standard", [rcpt], encrypted.content)
            note = f"smime={encrypted.algorithm} rcpt-cert=sha256:{encrypted.cert_sha256}"
            results += [replace(r, mode="smime", note=note) for r in sent]
        return results


class Router:
    def __init__(self, modes: Mapping[str, Mode]) -> None:
        """`modes` by the name a policy's `via` uses."""
        self.modes = modes

    async def send(
        self, attempt: Attempt, via: Sequence[str], recipients: list[str], content: bytes
    ) -> list[RecipientResult]:
        """Try the policy's modes in order; a recipient moves on to the next mode only
        when the current one is unavailable for it."""
        done: list[RecipientResult] = []
        waiting = recipients
        unavailable: list[RecipientResult] = []
        for name in via:
            mode = self.modes.get(name)
            if mode is None:
                continue  # not built in this server
            outcome = await mode.send(attempt, waiting, content)
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
                f"no delivery mode of the policy ({', '.join(via)}) is available here",
                None,
                via[-1],
            )
            for r in waiting
        ]
