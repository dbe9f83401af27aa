"""Key custody of a portal copy: the master key alone cannot open it.

The copy is encrypted under a fresh data key (AES-256-GCM). That data key is
wrapped twice: first under a key derived from the link's secret (HKDF-SHA256),
then under the master key like any other data key (so key rotation re-wraps
it without knowing the secret). The secret travels only in the recipient's
link; phigate keeps a SHA-256 verifier of it to find the copy. A thief with
the database and the key files but without the link has the outer key only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.store.keyring import Keyring, Sealed

SECRET_BYTES = 32
TOKEN_LENGTH = 43  # base64url of 32 bytes, unpadded
_NONCE_BYTES = 12
_VERIFIER_LABEL = b"phigate portal link verifier\x00"
_WRAP_LABEL = b"phigate portal link key"


class CustodyError(Exception):
    """The copy cannot be opened: wrong secret, tampered row, or shredded."""


@dataclass(frozen=True)
class Link:
    """A new link's secret; `token` goes in the URL, `verifier` in the database."""

    secret: bytes

    @classmethod
    def new(cls) -> Link:
        return cls(secrets.token_bytes(SECRET_BYTES))

    @property
    def token(self) -> str:
        return base64.urlsafe_b64encode(self.secret).rstrip(b"=").decode("ascii")

    @property
    def verifier(self) -> str:
        return verifier_of(self.secret)


def verifier_of(secret: bytes) -> str:
    return hashlib.sha256(_VERIFIER_LABEL + secret).hexdigest()


def parse_token(token: str) -> Link | None:
    """The link in a URL, or None if it cannot be one (never an exception)."""
    if len(token) != TOKEN_LENGTH or not token.isascii():
        return None
    try:
        secret = base64.urlsafe_b64decode(token + "=")
    except (binascii.Error, ValueError):
        return None
    if len(secret) != SECRET_BYTES:
        return None
    link = Link(secret)
    # Only the canonical spelling: one link, one URL.
    return link if hmac.compare_digest(link.token, token) else None


def _link_key(secret: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_WRAP_LABEL)
    return AESGCM(derived.derive(secret))


def context_of(queue_id: str, recipient: str) -> bytes:
    """Bound to the ciphertext and both wraps: a row's content cannot be swapped into another."""
    return f"portal\x00{queue_id}\x00{recipient}".encode()


def seal(keyring: Keyring, content: bytes, link: Link, context: bytes) -> Sealed:
    data_key = AESGCM.generate_key(256)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    ciphertext = nonce + AESGCM(data_key).encrypt(nonce, content, context)
    inner_nonce = secrets.token_bytes(_NONCE_BYTES)
    inner = inner_nonce + _link_key(link.secret).encrypt(inner_nonce, data_key, context)
    key_id, wrapped = keyring.wrap(inner)
    return Sealed(key_id, wrapped, ciphertext)


def open_sealed(keyring: Keyring, sealed: Sealed, link: Link, context: bytes) -> bytes:
    """The content; CustodyError if the link is not this copy's or a byte was changed."""
    try:
        inner = keyring.unwrap(sealed.key_id, sealed.wrapped_key)
        data_key = _link_key(link.secret).decrypt(
            inner[:_NONCE_BYTES], inner[_NONCE_BYTES:], context
        )
        nonce, body = sealed.ciphertext[:_NONCE_BYTES], sealed.ciphertext[_NONCE_BYTES:]
        return AESGCM(data_key).decrypt(nonce, body, context)
    except (InvalidTag, ValueError) as exc:
        raise CustodyError("the link does not open this message") from exc
