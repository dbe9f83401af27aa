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
    queue_id = queue.insert_own_mail(
        conn, keyring, to=(to,), content=content, listener=LISTENER, now=now
    )
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
