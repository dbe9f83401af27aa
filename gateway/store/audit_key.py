"""The audit key: a secret kept outside the database that keys the audit chain.

With it, each audit event's hash is an HMAC-SHA256, so someone who can write
the database but not read the keys directory cannot edit an event and
re-chain what follows, and cannot forge the signed checkpoints that expose a
truncated trail. The file (`<keys_dir>/audit.key`, mode 0600) is made by
`phigate init` and `phigate serve`; it stays outside the master keyring's
`mk-*.key` names. Separate subkeys are derived for the chain and for
checkpoints, so a value made for one can never stand for the other.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from gateway.store.keyfiles import create_key_file, read_key_file

KEY_FILE = "audit.key"


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, b"phigate audit " + purpose, hashlib.sha256).digest()


class AuditKey:
    """HMAC-SHA256 under subkeys of one secret: chain hashes and checkpoint signatures."""

    __slots__ = ("_chain", "_checkpoint", "key_id")

    def __init__(self, secret: bytes) -> None:
        # A keyed HMAC object copied per event: the key schedule is paid once.
        self._chain = hmac.new(_derive(secret, b"chain"), digestmod=hashlib.sha256)
        self._checkpoint = hmac.new(_derive(secret, b"checkpoint"), digestmod=hashlib.sha256)
        # Names the key in checkpoints without revealing it.
        self.key_id = _derive(secret, b"key id")[:8].hex()

    def chain_hash(self, data: bytes) -> str:
        mac = self._chain.copy()
        mac.update(data)
        return mac.hexdigest()

    def sign(self, data: bytes) -> str:
        mac = self._checkpoint.copy()
        mac.update(data)
        return mac.hexdigest()

    def signed(self, data: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(data), signature)


def create_audit_key(keys_dir: Path) -> None:
    """Make the audit key if there is none yet (new installation, or upgrade)."""
    create_key_file(keys_dir / KEY_FILE)


def load_audit_key(keys_dir: Path) -> AuditKey:
    secret = read_key_file(
        keys_dir / KEY_FILE,
        "audit key",
        lost="the events chained under it cannot be verified",
    )
    return AuditKey(secret)
