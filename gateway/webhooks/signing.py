"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A secret is 32 random bytes, shown once as `whsec_` and their base64. Each
request carries `webhook-id` (the same on every retry of one event, so a
receiver can drop repeats), `webhook-timestamp` (UNIX seconds of this attempt)
and `webhook-signature`: `v1,` and the base64 HMAC-SHA256, under the secret's
bytes, of `{id}.{timestamp}.{body}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def secret_text(secret: bytes) -> str:
    """The form a receiver configures: whsec_ and the base64 of the bytes."""
    return SECRET_PREFIX + base64.b64encode(secret).decode("ascii")


def signature(secret: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: bytes, webhook_id: str, timestamp: int, body: bytes) -> list[tuple[str, str]]:
    """The request's headers: the three signature headers and the body's type."""
    return [
        ("content-type", "application/json"),
        ("webhook-id", webhook_id),
        ("webhook-timestamp", str(timestamp)),
        ("webhook-signature", signature(secret, webhook_id, timestamp, body)),
    ]
