"""What a person signs in with: an argon2id password and a TOTP code (RFC 6238).

Passwords are chosen by people, so they are stretched with argon2-cffi's
default profile (RFC 9106's second recommendation: 64 MiB, 3 passes), slow on
purpose: call `hash_password` and `password_matches` off the event loop. TOTP
secrets must be read back to check a code, so they are kept sealed with
AES-256-GCM under a key derived from the web key (keys/web.key, outside the
database), bound to the person's name. A code is accepted once: the time step
it matched is recorded and an older or equal step is refused.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.store import keyfiles

KEY_FILE = "web.key"
MIN_PASSWORD_CHARS, MAX_PASSWORD_CHARS = 12, 1024
ISSUER = "phigate"
CODE_DIGITS = 6
# One step either side: a phone's clock may be up to 30 seconds off.
_STEPS_ACCEPTED = (-1, 0, 1)
_NONCE_BYTES = 12
_HASHER = PasswordHasher()


@functools.cache
def _nobody() -> str:
    """A hash of nothing anyone can type, checked when the name is unknown so that a
    wrong name costs as long as a wrong password. Made at first use: hashing takes a
    fifth of a second, which every command that imports this module would pay."""
    return _HASHER.hash(secrets.token_bytes(32))


def web_key(keys_dir: Path) -> bytes:
    """The web key (made if absent: before forking, by the server's start-up)."""
    return keyfiles.load_or_create(
        keys_dir,
        KEY_FILE,
        "web key",
        "every TOTP enrolment must be made again and forms in progress stop working",
    )


class FactorError(ValueError):
    """A password or secret that cannot be used; the message says why and what to do."""


def check_password_rules(password: str) -> None:
    """Raise FactorError unless the password is long enough to resist guessing."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise FactorError(
            f"the password has {len(password)} characters: use at least "
            f"{MIN_PASSWORD_CHARS} (a few unrelated words make a good one)"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise FactorError(f"the password is longer than {MAX_PASSWORD_CHARS} characters")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return _HASHER.hash(password)


def password_matches(password_hash: str | None, typed: str) -> bool:
    """Whether `typed` is the password; with no hash (unknown name), as slow and False."""
    try:
        return _HASHER.verify(password_hash or _nobody(), typed) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Enrolment:
    secret: str  # base32, as authenticator apps take it
    uri: str  # otpauth://totp/... for a QR code


def new_totp(name: str) -> Enrolment:
    secret = pyotp.random_base32()
    uri = pyotp.TOTP(secret, digits=CODE_DIGITS).provisioning_uri(name=name, issuer_name=ISSUER)
    return Enrolment(secret, uri)


def _sealing_key(web_key: bytes) -> AESGCM:
    return AESGCM(hmac.new(web_key, b"totp secrets", hashlib.sha256).digest())


def seal_totp(web_key: bytes, name: str, secret: str) -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + _sealing_key(web_key).encrypt(nonce, secret.encode(), name.encode())


def open_totp(web_key: bytes, name: str, sealed: bytes) -> str:
    """The person's TOTP secret; FactorError when the web key is not the one it was
    sealed under (keys/web.key replaced) or the sealed secret was moved or changed."""
    nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        return _sealing_key(web_key).decrypt(nonce, body, name.encode()).decode()
    except InvalidTag:
        raise FactorError(
            f"the TOTP secret of {name!r} cannot be opened with keys/{KEY_FILE}: enrol "
            f"again with `phigate user totp enroll {name}`"
        ) from None


def totp_step(
    secret: str, typed: str, last_step: int | None, now: float | None = None
) -> int | None:
    """The time step whose code `typed` is (spaces ignored), if it is later than
    `last_step` (a code is used once); None for a wrong, old or reused code."""
    code = "".join(typed.split())
    if len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=CODE_DIGITS)
    current = totp.timecode(time.time() if now is None else now)
    for offset in _STEPS_ACCEPTED:
        step = current + offset
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step if last_step is None or step > last_step else None
    return None
