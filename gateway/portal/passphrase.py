"""The sender's portal passphrase: read from its header, kept only as an argon2id hash.

A sending system that protects a message with a passphrase it shared with
the recipient out of band sets it in the header named by
`portal.passphrase_header`. Intake removes that header from every message
before anything is stored, and keeps the passphrase only as a hash on the
jobs whose policy terms ask for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from argon2.exceptions import InvalidHashError, VerificationError

from gateway.store.principals import HASHER

MIN_CHARS, MAX_CHARS = 8, 200
_PASSPHRASE = re.compile(rb"[\x20-\x7e]{%d,%d}" % (MIN_CHARS, MAX_CHARS))
_FOLD = re.compile(rb"\r\n(?=[ \t])")

# What a sender must do, for the reply refusing a message without a good one.
RULES = f"{MIN_CHARS} to {MAX_CHARS} printable ASCII characters on one line"


def passphrase_of(values: Sequence[bytes]) -> bytes | None:
    """The passphrase the header fields give, or None when there is no field, more
    than one, or a value that is empty or not `RULES` (surrounding blanks ignored)."""
    if len(values) != 1:
        return None
    value = _FOLD.sub(b"", values[0]).strip(b" \t")
    return value if _PASSPHRASE.fullmatch(value) else None


def hash_passphrase(passphrase: bytes) -> str:
    """argon2id, with the parameters principals' secrets use (OWASP's for passwords).

    Takes tens of milliseconds and 19 MiB: call it off the event loop.
    """
    return HASHER.hash(passphrase)


def passphrase_matches(passphrase_hash: str | None, typed: str) -> bool:
    """Whether what the recipient typed is the sender's passphrase (blanks around it
    ignored, as when it was hashed). Slow on purpose: call it off the event loop."""
    typed = typed.strip(" \t")
    if passphrase_hash is None or not typed:
        return False
    try:
        return HASHER.verify(passphrase_hash, typed)
    except (VerificationError, InvalidHashError):
        return False
