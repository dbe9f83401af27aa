"""Unsubscribe links: signed, expiring tokens for List-Unsubscribe (RFC 2369, RFC 8058).

A token is the AES-256-GCM encryption of (expiry, purpose, address) under a key
kept in `<keys_dir>/unsubscribe.key`, so it shows nothing in clear and cannot
be forged or altered. Layout, before encoding:

    version (1) | nonce (12) | ciphertext of payload | tag (16)
    payload = expires_at (4, big-endian UNIX seconds) | len(purpose) (1) | purpose | address

The nonce is random per token and doubles as the token's id (recorded as the
opt-out's reference, so a replay is recognised). The HTTPS link carries the
token in URL-safe base64.

A mailto address must keep its local part within RFC 5321's 64 octets, too
short to carry an address. It carries instead a keyed hash of (purpose,
address), in lower-case base32 (mail systems may change the case of local
parts); the delivery worker stores what it stands for in `unsubscribe_mailto`
before sending (see `gateway.consent.mailto`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.config import UnsubscribeConfig, public_base_url
from gateway.store import keyfiles

KEY_FILE = "unsubscribe.key"
_VERSION = b"\x01"
_AAD = b"phigate-unsubscribe" + _VERSION
_NONCE_BYTES = 12
_TAG_BYTES = 16
_HEADER = struct.Struct(">IB")  # expires_at, length of the purpose
_MIN_BYTES = 1 + _NONCE_BYTES + _HEADER.size + _TAG_BYTES
_MAX_TOKEN_CHARS = 1024  # longer input is not worth decoding
_SECONDS_PER_DAY = 86400
_MAILTO_ID_BYTES = 15  # 24 base32 characters: "unsubscribe+" and the id stay within 64


class LinkError(Exception):
    """A token that cannot be used: `invalid` (tampered, truncated, wrong key) or `expired`."""

    def __init__(self, kind: Literal["invalid", "expired"]) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True)
class UnsubscribeRequest:
    address: str
    purpose: str
    token_id: str  # hex of the token's random nonce
    expires_at: float


def load_key(keys_dir: Path) -> bytes:
    """The 256-bit unsubscribe key, created if there is none yet."""
    return keyfiles.load_or_create(
        keys_dir, KEY_FILE, "unsubscribe key", "every unsubscribe link sent so far stops working"
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).rstrip(b"=").decode("ascii").lower()


def _decoded(token: str) -> bytes | None:
    """The bytes of a base64url token, None if it is not one."""
    try:
        return base64.b64decode(token + "=" * (-len(token) % 4), b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None


class UnsubscribeLinks:
    """Makes and reads the unsubscribe links of marketing mail."""

    def __init__(
        self, key: bytes, config: UnsubscribeConfig, hostname: str, public_url: str | None
    ) -> None:
        """`key` from `load_key`; links point at `public_url` (web.public_url), by
        default https://`hostname`; mailto addresses are at `hostname`."""
        self._aead = AESGCM(key)
        self._mailto_key = hmac.new(key, b"phigate-unsubscribe-mailto", hashlib.sha256).digest()
        self.link_days = config.link_days
        self._lifetime = config.link_days * _SECONDS_PER_DAY
        self._base_url = public_base_url(public_url, hostname)
        self._mailto_local = config.mailto_local_part
        self._hostname = hostname

    def _token(self, address: str, purpose: str, now: float) -> bytes:
        """A new token (raw bytes) for `address` and `purpose`, valid for `link_days`."""
        purpose_bytes = purpose.encode("utf-8")
        if len(purpose_bytes) > 255:
            raise ValueError("purpose is longer than 255 bytes")
        payload = (
            _HEADER.pack(int(now) + self._lifetime, len(purpose_bytes))
            + purpose_bytes
            + address.encode("utf-8")
        )
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, payload, _AAD)

    def links(self, address: str, purpose: str, now: float) -> tuple[str, str]:
        """(HTTPS one-click URL, mailto URI) for List-Unsubscribe; neither shows the address."""
        raw = self._token(address, purpose, now)
        return (
            f"{self._base_url}/unsubscribe/{_b64(raw)}",
            f"mailto:{self._mailto_local}+{self.mailto_id(address, purpose)}@{self._hostname}",
        )

    def mailto_id(self, address: str, purpose: str) -> str:
        """The mailto token of (address, purpose): 120 bits of a keyed hash, base32."""
        digest = hmac.new(
            self._mailto_key, f"{purpose}\0{address}".encode(), hashlib.sha256
        ).digest()
        return _b32(digest[:_MAILTO_ID_BYTES])

    @property
    def lifetime(self) -> int:
        """Seconds a link keeps working."""
        return self._lifetime

    def read(self, token: str, now: float) -> UnsubscribeRequest:
        """The request a token carries; raises LinkError("invalid" | "expired")."""
        if len(token) > _MAX_TOKEN_CHARS or not token.isascii():
            raise LinkError("invalid")
        raw = _decoded(token)
        if raw is None or len(raw) < _MIN_BYTES or raw[:1] != _VERSION:
            raise LinkError("invalid")
        nonce = raw[1 : 1 + _NONCE_BYTES]
        try:
            payload = self._aead.decrypt(nonce, raw[1 + _NONCE_BYTES :], _AAD)
        except InvalidTag:
            raise LinkError("invalid") from None
        return self._request(payload, nonce, now)

    @staticmethod
    def _request(payload: bytes, nonce: bytes, now: float) -> UnsubscribeRequest:
        expires_at, purpose_len = _HEADER.unpack_from(payload)
        rest = payload[_HEADER.size :]
        try:
            purpose = rest[:purpose_len].decode("utf-8")
            address = rest[purpose_len:].decode("utf-8")
        except UnicodeDecodeError:
            raise LinkError("invalid") from None  # authentic but not ours: another format
        if now >= expires_at:
            raise LinkError("expired")
        return UnsubscribeRequest(address, purpose, nonce.hex(), float(expires_at))
