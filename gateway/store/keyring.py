"""Envelope encryption: per-message AES-256-GCM data keys wrapped by a master key.

Master keys live in files outside the database (one file per key id, mode
0600). Deleting a message's wrapped key destroys its content (crypto-shredding);
rotation adds a new master key and re-wraps every data key under it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_KEY_SUFFIX = ".key"
_MASTER_PREFIX = "mk-"  # other keys may share the directory (e.g. unsubscribe.key)
_CURRENT = "CURRENT"
_NONCE_BYTES = 12


class KeyringError(Exception):
    """A master key is missing, unreadable or has unsafe permissions."""


@dataclass(frozen=True)
class Sealed:
    """Ciphertext plus what is needed to open it (nothing secret in clear)."""

    key_id: str
    wrapped_key: bytes  # nonce || AES-GCM(master, data key)
    ciphertext: bytes  # nonce || AES-GCM(data key, content)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class Keyring:
    """The master keys in one directory; the CURRENT file names the one used to wrap."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._keys: dict[str, AESGCM] = {}
        self._current = ""
        self.reload()

    @classmethod
    def create(cls, directory: Path) -> Keyring:
        """Create the directory and a first master key if none exists."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not (directory / _CURRENT).exists():
            cls._new_key(directory)
        return cls(directory)

    @staticmethod
    def _new_key(directory: Path) -> str:
        key_id = _MASTER_PREFIX + secrets.token_hex(4)
        _write_private(
            directory / f"{key_id}{_KEY_SUFFIX}", AESGCM.generate_key(256).hex().encode()
        )
        tmp = directory / f".{_CURRENT}.tmp"
        tmp.write_text(key_id + "\n")
        os.replace(tmp, directory / _CURRENT)
        return key_id

    def reload(self) -> None:
        current_file = self.directory / _CURRENT
        if not current_file.exists():
            raise KeyringError(
                f"no master key in {self.directory}: "
                "run `phigate init` or restore the keys directory"
            )
        keys: dict[str, AESGCM] = {}
        for path in sorted(self.directory.glob(f"{_MASTER_PREFIX}*{_KEY_SUFFIX}")):
            if path.stat().st_mode & 0o077:
                raise KeyringError(
                    f"master key {path} is readable by group or others: run `chmod 600 {path}`"
                )
            try:
                keys[path.stem] = AESGCM(bytes.fromhex(path.read_text().strip()))
            except ValueError as exc:
                raise KeyringError(f"master key {path} is not a 256-bit hex key") from exc
        current = current_file.read_text().strip()
        if current not in keys:
            raise KeyringError(
                f"{current_file} names key {current!r}, which is not in {self.directory}"
            )
        self._keys, self._current = keys, current

    @property
    def current_key_id(self) -> str:
        return self._current

    def rotate(self) -> str:
        """Add a new master key and make it current; returns its id."""
        key_id = self._new_key(self.directory)
        self.reload()
        return key_id

    def _master(self, key_id: str) -> AESGCM:
        try:
            return self._keys[key_id]
        except KeyError:
            raise KeyringError(f"master key {key_id!r} is not in {self.directory}") from None

    def wrap(self, data_key: bytes, key_id: str | None = None) -> tuple[str, bytes]:
        key_id = key_id or self._current
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return key_id, nonce + self._master(key_id).encrypt(nonce, data_key, key_id.encode())

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        nonce, body = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:]
        return self._master(key_id).decrypt(nonce, body, key_id.encode())

    def seal(self, content: bytes, context: bytes) -> Sealed:
        """Encrypt content under a fresh data key; `context` (e.g. the queue id) is bound as AAD."""
        data_key = AESGCM.generate_key(256)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        ciphertext = nonce + AESGCM(data_key).encrypt(nonce, content, context)
        key_id, wrapped = self.wrap(data_key)
        return Sealed(key_id, wrapped, ciphertext)

    def open(self, sealed: Sealed, context: bytes) -> bytes:
        data_key = self.unwrap(sealed.key_id, sealed.wrapped_key)
        nonce, body = sealed.ciphertext[:_NONCE_BYTES], sealed.ciphertext[_NONCE_BYTES:]
        return AESGCM(data_key).decrypt(nonce, body, context)

    def rewrap(self, key_id: str, wrapped: bytes) -> tuple[str, bytes]:
        """Re-wrap a data key under the current master key (for rotation)."""
        return self.wrap(self.unwrap(key_id, wrapped))
