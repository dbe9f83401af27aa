"""Marketing mail at delivery: consent checked again just before sending, RFC 8058
one-click unsubscribe headers, and the CAN-SPAM footer where the policy asks for one."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence

from gateway.consent.links import UnsubscribeLinks
from gateway.consent.purpose import MARKETING
from gateway.consent.source import RegistryConsent
from gateway.consent.states import WITHDRAWN
from gateway.delivery.client import RecipientResult
from gateway.delivery.footer import add_footer
from gateway.delivery.rewrite import with_headers
from gateway.logs import event
from gateway.store.queue import ClaimedJob

log = logging.getLogger("gateway.delivery")


class Marketing:
    def __init__(self, consent: RegistryConsent, links: UnsubscribeLinks) -> None:
        self.consent = consent
        self.links = links

    async def still_consented(
        self, queue_id: str, jobs: Sequence[ClaimedJob]
    ) -> tuple[list[ClaimedJob], list[RecipientResult]]:
        """The jobs to send now, and the results of those not sent. A marketing
        recipient whose consent was revoked, expired or opted out while the message
        was queued is not sent to: the job bounces (audited; content-free DSN to the
        sender). If consent cannot be read, marketing waits (fail closed)."""
        by_purpose: dict[str, list[ClaimedJob]] = defaultdict(list)
        for job in jobs:
            if job.purpose:
                by_purpose[job.purpose].append(job)
        stopped: set[int] = set()
        results: list[RecipientResult] = []
        for purpose, group in by_purpose.items():
            try:
                states = await self.consent.states([j.recipient for j in group], purpose)
            except Exception:
                event(log, "consent_check_failed", logging.ERROR, queue_id=queue_id)
                reason = "consent could not be checked; will retry"
                results += [
                    RecipientResult(j.recipient, None, "4.3.0", reason, None, "consent")
                    for j in group
                ]
                stopped.update(j.id for j in group)
                continue
            for job in group:
                state = states.get(job.recipient, "none")
                if state in WITHDRAWN:
                    reply = f"not sent: consent {state.replace('_', ' ')} while queued"
                    results.append(
                        RecipientResult(job.recipient, 550, "5.7.1", reply, None, "consent")
                    )
                    stopped.add(job.id)
        return [job for job in jobs if job.id not in stopped], results

    def with_unsubscribe(self, content: bytes, recipient: str, footer: str | None) -> bytes:
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
