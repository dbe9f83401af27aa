"""Portal copies made directly in a running server's store, as delivery in mode portal would."""

from __future__ import annotations

import email
import re
import time

import portal_copies
from harness import Phigate
from portal_copies import Made
from webgate import settings_of, store

from gateway.store import portal
from gateway.store.keyring import Keyring


def make_copy(
    gw: Phigate,
    content: bytes,
    *,
    recipient: str,
    sender: str = "doctor@clinic.example",
    passphrase_hash: str | None = None,
    read_receipt: bool = False,
    expires_in: float = 86400.0,
    state: str = portal.WAITING,
) -> Made:
    """A copy for `recipient` in the running server's store, and its link."""
    settings = settings_of(gw)
    keyring = Keyring(settings.path(settings.keys_dir))
    with store(gw) as db, db.transaction() as conn:
        return portal_copies.make_copy(
            conn,
            keyring,
            recipient,
            content,
            now=time.time(),
            expires_in=expires_in,
            passphrase_hash=passphrase_hash,
            sender=sender,
            read_receipt=read_receipt,
            state=state,
        )


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
