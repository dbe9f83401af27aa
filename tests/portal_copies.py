"""Portal copies made the way delivery makes them (sealed with a link's secret), and opened back."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from gateway.portal import custody
from gateway.portal.custody import Link
from gateway.store import portal, queue
from gateway.store.keyring import Keyring
from gateway.store.portal import NewCopy

DAY = 86400.0
SENDER = "ehr@clinic.example.org"


@dataclass(frozen=True)
class Made:
    id: int
    queue_id: str
    recipient: str
    link: Link  # what only the recipient's notice carries

    @property
    def token(self) -> str:
        return self.link.token


def make_copy(
    conn: Connection,
    keyring: Keyring,
    recipient: str,
    content: bytes,
    *,
    now: float,
    queue_id: str | None = None,
    expires_in: float = 30 * DAY,
    passphrase_hash: str | None = None,
    sender: str = SENDER,
    read_receipt: bool = True,
    state: str = portal.WAITING,
) -> Made:
    """Seal `content` for `recipient` and store the copy, in the caller's transaction;
    `state` EXPIRED or RECALLED closes it as the admin commands would."""
    queue_id = queue_id or queue.new_queue_id(now)
    link = Link.new()
    sealed = custody.seal(keyring, content, link, custody.context_of(queue_id, recipient))
    copy_id = portal.insert_copy(
        conn,
        NewCopy(
            queue_id=queue_id,
            recipient=recipient,
            sender=sender,
            principal="ehr1",
            verifier=link.verifier,
            sealed=sealed,
            access=portal.PASSPHRASE if passphrase_hash else portal.CODE,
            passphrase_hash=passphrase_hash,
            show_sender=False,
            read_receipt=read_receipt,
            notice_queue_id=queue.new_queue_id(now),
            created_at=now,
            expires_at=now + expires_in,
        ),
    )
    if state in (portal.EXPIRED, portal.RECALLED):
        portal.close(conn, [copy_id], state, now)
    return Made(copy_id, queue_id, recipient, link)


def open_copy(conn: Connection, keyring: Keyring, made: Made) -> bytes | None:
    """The content, as the portal opens it with the link; None once it is shredded."""
    found = portal.by_verifier(conn, made.link.verifier)
    assert found is not None
    if found.sealed is None:
        return None
    context = custody.context_of(made.queue_id, made.recipient)
    return custody.open_sealed(keyring, found.sealed, made.link, context)
