"""Turn failed recipients into a queued, sealed, content-free DSN message.

Used by delivery (bounces, expiry) and by intake (recipients the policy
refused while others were accepted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from gateway.audit.trail import AuditEvent
from gateway.bounce.dsn import FailedRecipient, build_dsn
from gateway.store import queue
from gateway.store.keyring import Keyring


@dataclass(frozen=True)
class BounceMaker:
    keyring: Keyring
    hostname: str
    postmaster: str

    def dsn(
        self,
        *,
        queue_id: str,
        sender: str,
        message_id: str | None,
        received_at: float,
        failed: Sequence[FailedRecipient],
        now: float,
    ) -> queue.NewMessage:
        """The DSN for message `queue_id`, to its `sender`, ready for queue.insert_message."""
        dsn_id = queue.new_queue_id(now)
        content = build_dsn(
            reporting_mta=self.hostname,
            from_address=self.postmaster,
            to_address=sender,
            queue_id=queue_id,
            original_message_id=message_id,
            arrival=datetime.fromtimestamp(received_at, UTC),
            failed=list(failed),
            now=datetime.fromtimestamp(now, UTC),
        )
        return queue.NewMessage(
            queue_id=dsn_id,
            received_at=now,
            listener="dsn",
            principal=None,
            client_ip="",
            sender="",
            size=len(content),
            message_id=None,
            sealed=self.keyring.seal(content, dsn_id.encode()),
            is_dsn=True,
        )


def queue_dsn(
    conn: Connection, dsn: queue.NewMessage, original: str, to: str, now: float, why: str = ""
) -> AuditEvent:
    """Queue `dsn` (about message `original`) for `to`; returns its audit event."""
    queue.insert_message(conn, dsn, [queue.NewJob(to, queue.DEFAULT_ROUTE)])
    return AuditEvent(
        event="dsn",
        result="queued",
        queue_id=dsn.queue_id,
        sender="",
        recipients=(to,),
        size=dsn.size,
        detail=f"for {original}" + (f": {why}" if why else ""),
        ts=now,
    )
