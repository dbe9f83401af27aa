"""Mode `portal`: the message stays here, sealed for its recipient, who is mailed a notice.

Each recipient gets a copy sealed under a key that only its link's secret
and the master key together unwrap (gateway.portal.custody), and a notice
carrying that link and nothing of the message. The copy, the notice and
their audit events are committed in one transaction; a delivery repeated
after a crash finds the copy already made and sends no second notice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import Connection

from gateway import metrics
from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.config import PortalConfig
from gateway.delivery.attempt import Attempt
from gateway.delivery.client import RecipientResult
from gateway.delivery.transport import off_loop
from gateway.portal import custody, outbox
from gateway.portal.notices import Notices
from gateway.store import portal
from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.store.queue import PortalTerms

_DAY = 86400
# How a copy is kept when its job names no terms (queued before a policy said any).
DEFAULT_TERMS = PortalTerms(
    access=portal.CODE,
    show_sender=False,
    expiry_days=None,
    read_receipt=False,
    passphrase_hash=None,
)


@dataclass(frozen=True)
class _Prepared:
    recipient: str
    link: str  # the URL, carried by the notice only
    copy: portal.NewCopy
    notice: bytes


@dataclass(frozen=True)
class PortalMode:
    db: Database
    keyring: Keyring
    notices: Notices
    config: PortalConfig
    base_url: str  # the public web address, e.g. https://phigate.example.org
    on_queued: Callable[[], None] = lambda: None  # the notices are new mail to deliver

    async def send(
        self, attempt: Attempt, recipients: list[str], content: bytes
    ) -> list[RecipientResult]:
        now = time.time()
        ready: list[_Prepared] = []
        results: list[RecipientResult] = []
        for rcpt in recipients:
            terms = attempt.portal_terms.get(rcpt, DEFAULT_TERMS)
            if terms.access == portal.PASSPHRASE and terms.passphrase_hash is None:
                # Never a weaker protection than the policy asked for.
                results.append(_result(rcpt, None, "4.7.0", "no passphrase to protect the copy"))
                continue
            ready.append(await off_loop(content, self._prepare, attempt, rcpt, terms, content, now))
        if ready:
            stored, new = await self.db.write(lambda conn: self._store(conn, attempt, ready, now))
            results += stored
            metrics.PORTAL_COPIES.labels("stored").inc(new)
            self.on_queued()
        return results

    def _prepare(
        self, attempt: Attempt, rcpt: str, terms: PortalTerms, content: bytes, now: float
    ) -> _Prepared:
        link = custody.Link.new()
        url = f"{self.base_url}/portal/m/{link.token}"
        expires_at = now + (terms.expiry_days or self.config.expiry_days) * _DAY
        sender = attempt.sender if terms.show_sender and attempt.sender else None
        notice = self.notices.notice(
            recipient=rcpt,
            link=url,
            expires_at=expires_at,
            sender=sender,
            passphrase=terms.access == portal.PASSPHRASE,
        )
        sealed = custody.seal(
            self.keyring, content, link, custody.context_of(attempt.queue_id, rcpt)
        )
        copy = portal.NewCopy(
            queue_id=attempt.queue_id,
            recipient=rcpt,
            sender=attempt.sender,
            principal=attempt.principal,
            verifier=link.verifier,
            sealed=sealed,
            access=terms.access,
            passphrase_hash=terms.passphrase_hash,
            show_sender=terms.show_sender,
            read_receipt=terms.read_receipt,
            notice_queue_id="",  # set when the notice is queued
            created_at=now,
            expires_at=expires_at,
        )
        return _Prepared(rcpt, url, copy, notice)

    def _store(
        self, conn: Connection, attempt: Attempt, ready: Sequence[_Prepared], now: float
    ) -> tuple[list[RecipientResult], int]:
        """The results, and how many copies are new (not stored by an earlier attempt)."""
        # May run again if the writer redoes its batch: what it returns is rebuilt.
        results, events = [], []
        for prepared in ready:
            rcpt = prepared.recipient
            made = portal.stored_for(conn, attempt.queue_id, rcpt)
            if made is not None:  # a repeated delivery: the notice went out with the first
                reply = f"stored for portal pickup earlier; notice {made.notice_queue_id}"
                results.append(_result(rcpt, 250, "2.0.0", reply))
                continue
            notice_id, mailed = outbox.queue_mail(
                conn,
                self.keyring,
                to=rcpt,
                content=prepared.notice,
                kind="notice",
                about=attempt.queue_id,
                now=now,
            )
            copy = replace(prepared.copy, notice_queue_id=notice_id)
            copy_id = portal.insert_copy(conn, copy)
            expires = datetime.fromtimestamp(copy.expires_at, UTC).strftime("%Y-%m-%dT%H:%MZ")
            events += [
                AuditEvent(
                    event="portal_stored",
                    result="waiting",
                    queue_id=attempt.queue_id,
                    principal=attempt.principal,
                    sender=attempt.sender,
                    recipients=(rcpt,),
                    detail=f"copy={copy_id} access={copy.access} expires={expires} "
                    f"notice={notice_id}",
                    ts=now,
                ),
                mailed,
            ]
            results.append(
                _result(rcpt, 250, "2.0.0", f"stored for portal pickup; notice {notice_id}")
            )
        trail.append(conn, events)
        return results, sum(e.event == "portal_stored" for e in events)


def _result(rcpt: str, code: int | None, status: str, reply: str) -> RecipientResult:
    return RecipientResult(rcpt, code, status, reply, "portal" if code else None, "portal")
