"""Portal copies made directly in a running server's store, as delivery in mode portal would."""

from __future__ import annotations

import email
import re
import time
from dataclasses import dataclass

from harness import Phigate
from webgate import settings_of, store

from gateway.portal import custody
from gateway.store import portal, queue
from gateway.store.keyring import Keyring


@dataclass(frozen=True)
class Made:
    token: str
    copy_id: int
    queue_id: str


def make_copy(
    gw: Phigate,
    content: bytes,
    *,
    recipient: str,
    sender: str = "doctor@clinic.example",
    access: str = portal.CODE,
    passphrase_hash: str | None = None,
    read_receipt: bool = False,
    expires_in: float = 86400.0,
    state: str = portal.WAITING,
) -> Made:
    """A sealed copy for `recipient` and the token of its link; `state` EXPIRED or
    RECALLED closes it as the admin commands would."""
    settings = settings_of(gw)
    keyring = Keyring(settings.path(settings.keys_dir))
    now = time.time()
    queue_id = queue.new_queue_id(now)
    link = custody.Link.new()
    sealed = custody.seal(keyring, content, link, custody.context_of(queue_id, recipient))
    with store(gw) as db, db.transaction() as conn:
        copy_id = portal.insert_copy(
            conn,
            portal.NewCopy(
                queue_id=queue_id,
                recipient=recipient,
                sender=sender,
                principal="ehr1",
                verifier=link.verifier,
                sealed=sealed,
                access=access,
                passphrase_hash=passphrase_hash,
                show_sender=True,
                read_receipt=read_receipt,
                notice_queue_id=queue.new_queue_id(now),
                created_at=now - 60,
                expires_at=now + expires_in,
            ),
        )
        if state in (portal.EXPIRED, portal.RECALLED):
            portal.close(conn, [copy_id], state, now)
    return Made(link.token, copy_id, queue_id)


def copy_of(gw: Phigate, copy_id: int) -> portal.Copy:
    with store(gw) as db, db.reading() as conn:
        found = portal.by_id(conn, copy_id)
    assert found is not None
    return found


def code_in(mail: bytes) -> str:
    """The access code in a code mail's text."""
    parsed = email.message_from_bytes(mail)
    payload = parsed.get_payload(decode=True)
    assert isinstance(payload, bytes)
    found = re.search(r"^\s+(\d{8})\s*$", payload.decode(), re.MULTILINE)
    assert found is not None, "no code in the mail"
    return found.group(1)
