"""Queueing the mail phigate writes for the portal, in the caller's transaction.

Notices, access codes and read receipts leave like DSNs: from the null
sender (no bounce loops), through the configured delivery (DKIM-signed as
phigate's own mail, over TLS where the recipient offers it), never through
the portal itself.
"""

from __future__ import annotations

from sqlalchemy import Connection

from gateway.audit.trail import AuditEvent
from gateway.store import queue
from gateway.store.keyring import Keyring

LISTENER = "portal"  # messages.listener of mail the portal writes or relays


def queue_mail(
    conn: Connection,
    keyring: Keyring,
    *,
    to: str,
    content: bytes,
    kind: str,
    about: str,
    now: float,
) -> tuple[str, AuditEvent]:
    """Seal and queue `content` for `to`; its queue id and audit event ("portal_mail").
    `kind` (notice, code, receipt) and `about` (the original queue id) are metadata."""
    queue_id = queue.new_queue_id(now)
    record = queue.NewMessage(
        queue_id=queue_id,
        received_at=now,
        listener=LISTENER,
        principal=None,
        client_ip="",
        sender="",
        size=len(content),
        message_id=None,
        sealed=keyring.seal(content, queue_id.encode()),
        is_dsn=True,  # phigate's own mail, like DSNs: DKIM-signed as the postmaster's domain
    )
    queue.insert_message(conn, record, [queue.NewJob(to, queue.DEFAULT_ROUTE)])
    audit = AuditEvent(
        event="portal_mail",
        result="queued",
        queue_id=queue_id,
        sender="",
        recipients=(to,),
        size=len(content),
        detail=f"{kind} for {about}",
        ts=now,
    )
    return queue_id, audit
