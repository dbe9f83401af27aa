"""Key custody of portal copies: the master key and the database alone open nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from portal_copies import Made, make_copy

from gateway.portal import custody
from gateway.store import portal
from gateway.store.database import Database
from gateway.store.keyring import Keyring, Sealed

CANARY = b"Subject: canary-custody-7731\r\n\r\nMRN 44-1187 canary-custody-7731\r\n"


def _stored(db: Database, keyring: Keyring) -> Made:
    with db.transaction() as conn:
        return make_copy(conn, keyring, "patient@example.net", CANARY, now=time.time())


def test_the_link_and_the_master_key_together_open_the_copy(db: Database, keyring: Keyring) -> None:
    parsed = custody.parse_token(_stored(db, keyring).token)
    assert parsed is not None
    with db.transaction() as conn:
        found = portal.by_verifier(conn, parsed.verifier)
    assert found is not None and found.sealed is not None
    context = custody.context_of(found.queue_id, found.recipient)
    assert custody.open_sealed(keyring, found.sealed, parsed, context) == CANARY


def test_database_and_master_key_without_the_link_read_nothing(
    db: Database, keyring: Keyring
) -> None:
    """What a thief of the database and the key files has: every row, every master key.
    Unwrapping with the master key yields only the link-wrapped data key, which
    opens nothing; another link opens nothing either."""
    link = _stored(db, keyring).link
    with db.transaction() as conn:
        [row] = portal.listing(conn)
        sealed = portal.by_verifier(conn, link.verifier)
    assert sealed is not None and sealed.sealed is not None
    stolen: Sealed = sealed.sealed
    context = custody.context_of(row.queue_id, row.recipient)
    assert link.secret.hex() not in repr(row) and link.token not in repr(row)
    inner = keyring.unwrap(stolen.key_id, stolen.wrapped_key)
    # The master key's unwrap gives 12 + 32 + 16 bytes: the data key still wrapped.
    assert len(inner) == 60
    nonce, body = stolen.ciphertext[:12], stolen.ciphertext[12:]
    for candidate in (inner[12:44], inner[-32:], inner[:32]):
        with pytest.raises(InvalidTag):
            AESGCM(candidate).decrypt(nonce, body, context)
    with pytest.raises(custody.CustodyError):
        custody.open_sealed(keyring, stolen, custody.Link.new(), context)
    # Nor does the right link open the copy under another message's context.
    with pytest.raises(custody.CustodyError):
        custody.open_sealed(keyring, stolen, link, custody.context_of("Q2", row.recipient))
    assert CANARY not in stolen.ciphertext and CANARY not in inner


def test_a_flipped_byte_is_refused_not_misread(keyring: Keyring) -> None:
    link = custody.Link.new()
    context = custody.context_of("Q1", "a@example.net")
    sealed = custody.seal(keyring, CANARY, link, context)
    tampered = Sealed(
        sealed.key_id,
        sealed.wrapped_key,
        sealed.ciphertext[:-1] + bytes([sealed.ciphertext[-1] ^ 1]),
    )
    with pytest.raises(custody.CustodyError):
        custody.open_sealed(keyring, tampered, link, context)


def test_a_rotated_master_key_still_opens_with_the_link(tmp_path: Path) -> None:
    keyring = Keyring.create(tmp_path / "keys")
    link = custody.Link.new()
    context = custody.context_of("Q1", "a@example.net")
    sealed = custody.seal(keyring, CANARY, link, context)
    old = sealed.key_id
    keyring.rotate()
    key_id, wrapped = keyring.rewrap(sealed.key_id, sealed.wrapped_key)
    assert key_id != old
    keyring.remove(old)
    assert custody.open_sealed(keyring, Sealed(key_id, wrapped, sealed.ciphertext), link, context)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "short",
        "A" * 42,
        "A" * 44,
        "A" * 42 + "=",
        "A" * 42 + "é",
        "A" * 42 + "/",  # not base64url
        "A" * 42 + "B",  # decodes, but not the canonical spelling of its bytes
    ],
)
def test_anything_but_a_canonical_token_is_no_link(token: str) -> None:
    assert custody.parse_token(token) is None


def test_a_token_round_trips() -> None:
    link = custody.Link.new()
    assert len(link.token) == custody.TOKEN_LENGTH
    parsed = custody.parse_token(link.token)
    assert parsed == link and parsed.verifier == link.verifier != link.secret.hex()
