"""Envelope encryption: per-message AES-256-GCM data keys wrapped by a master key.

Master keys live in files outside the database (`mk-ID.key`, mode 0600);
the CURRENT file names the one new data keys are wrapped with. Deleting a
message's wrapped key destroys its content (crypto-shredding); rotation adds
a new master key and re-wraps every data key under it.

A running server follows rotation without a restart: it reloads the
directory on SIGHUP, when CURRENT changes (checked, with one stat, before
every wrap, so new mail is always sealed under the newest key) and when it
meets a key id it does not know.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.logs import event
from gateway.store.files import sync_directory, write_private

log = logging.getLogger("gateway.keyring")

_KEY_SUFFIX = ".key"
_MASTER_PREFIX = "mk-"  # other keys share the directory (e.g. unsubscribe.key)
_CURRENT = "CURRENT"
_NONCE_BYTES = 12
# Octets of a large content encrypted (and handed on) at a time by `seal_to`: large
# enough that a 2 MB content costs no more than sealed whole (bench/seal_large.py).
_PIECE = 1024 * 1024


class KeyringError(Exception):
    """A master key is missing, unreadable or has unsafe permissions."""


@dataclass(frozen=True)
class Sealed:
    """Ciphertext plus what is needed to open it (nothing secret in clear)."""

    key_id: str
    wrapped_key: bytes  # nonce || AES-GCM(master, data key)
    ciphertext: bytes  # nonce || AES-GCM(data key, content)


def _signature(path: Path | str) -> tuple[int, int, int] | None:
    """What changes when a file is replaced or rewritten (None if it is missing)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _encrypt(content: bytes, context: bytes) -> tuple[bytes, bytes]:
    """A fresh data key, and content encrypted under it with `context` as AAD."""
    data_key = AESGCM.generate_key(256)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return data_key, nonce + AESGCM(data_key).encrypt(nonce, content, context)


def _encrypted_pieces(data_key: bytes, parts: Sequence[bytes], context: bytes) -> Iterator[bytes]:
    """What `_encrypt` gives for the parts joined, octet for octet, in pieces: the nonce,
    the ciphertext at most _PIECE octets at a time, the tag."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    encryptor = Cipher(algorithms.AES(data_key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(context)
    yield nonce
    for part in parts:
        view = memoryview(part)
        for start in range(0, len(view), _PIECE):
            yield encryptor.update(view[start : start + _PIECE])
    yield encryptor.finalize() + encryptor.tag


class Keyring:
    """The master keys in one directory; the CURRENT file names the one used to wrap.

    `on_reload` is called (in the reloading thread) after every successful
    reload, so a server can report which key it seals with.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.on_reload: Callable[[], None] | None = None
        self._keys: dict[str, AESGCM] = {}
        self._current = ""
        self._current_signature: tuple[int, int, int] | None = None
        self._current_path = str(directory / _CURRENT)
        self._lock = threading.Lock()
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
        write_private(directory / f"{key_id}{_KEY_SUFFIX}", AESGCM.generate_key(256).hex().encode())
        sync_directory(directory)
        tmp = directory / f".{_CURRENT}.{secrets.token_hex(4)}.tmp"
        tmp.write_text(key_id + "\n")
        os.replace(tmp, directory / _CURRENT)
        sync_directory(directory)
        return key_id

    def reload(self) -> None:
        """Read every master key and CURRENT again; on error the loaded keys stay."""
        with self._lock:
            self._load()
        if self.on_reload is not None:
            self.on_reload()

    def _load(self) -> None:
        current_file = self.directory / _CURRENT
        signature = _signature(current_file)  # before reading: a later change is seen later
        if signature is None:
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
        self._current_signature = signature

    @property
    def current_key_id(self) -> str:
        return self._current

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def rotate(self) -> str:
        """Add a new master key and make it current; returns its id."""
        key_id = self._new_key(self.directory)
        self.reload()
        return key_id

    def remove(self, key_id: str) -> None:
        """Delete a master key file that is not the current key (callers check nothing needs it)."""
        self.reload()
        if key_id not in self._keys:
            raise KeyringError(f"no master key {key_id!r} in {self.directory}")
        if key_id == self._current:
            raise KeyringError(f"{key_id} is the current master key; rotate first")
        (self.directory / f"{key_id}{_KEY_SUFFIX}").unlink()
        sync_directory(self.directory)
        self.reload()

    def follow_current(self) -> None:
        """Reload if CURRENT was replaced since the last load (a rotation)."""
        signature = _signature(self._current_path)  # a str: this runs for every message
        if signature is None or signature == self._current_signature:
            return
        try:
            self.reload()
        except KeyringError as exc:
            # Keep sealing under the loaded key (still encrypted): the admin is
            # told here, and `phigate keys rotate` reports that this process lags.
            self._current_signature = signature
            event(log, "keyring_reload_failed", logging.ERROR, problem=str(exc))

    def _master(self, key_id: str) -> AESGCM:
        found = self._keys.get(key_id)
        if found is None:
            # Re-wrapped by a rotation this process has not heard of yet.
            self.reload()
            found = self._keys.get(key_id)
        if found is None:
            raise KeyringError(
                f"master key {key_id} is not in {self.directory}: restore "
                f"{key_id}{_KEY_SUFFIX} from a backup of that directory"
            )
        return found

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        """Wrap under the newest master key."""
        self.follow_current()
        key_id = self._current
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return key_id, nonce + self._master(key_id).encrypt(nonce, data_key, key_id.encode())

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        nonce, body = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:]
        return self._master(key_id).decrypt(nonce, body, key_id.encode())

    def seal(self, content: bytes, context: bytes) -> Sealed:
        """Encrypt content under a fresh data key; `context` (e.g. the queue id) is bound as AAD."""
        data_key, ciphertext = _encrypt(content, context)
        key_id, wrapped = self.wrap(data_key)
        return Sealed(key_id, wrapped, ciphertext)

    def seal_to(
        self, parts: Sequence[bytes], context: bytes, write: Callable[[Iterable[bytes]], None]
    ) -> Sealed:
        """`seal` of the parts one after another, for a large content kept apart from its
        row: `write` is handed the ciphertext in pieces as they are encrypted (the
        octets `seal` would give) and must take them all; the Sealed returned holds the
        key alone. Neither the parts joined nor the whole ciphertext is ever in memory
        (bench/seal_large.py: a 10 MB content sealed and written in a quarter of the
        CPU that `seal` and one write take)."""
        data_key = AESGCM.generate_key(256)
        key_id, wrapped = self.wrap(data_key)
        write(_encrypted_pieces(data_key, parts, context))
        return Sealed(key_id, wrapped, b"")

    def seal_shared(self, content: bytes, context: bytes, other: Keyring) -> tuple[Sealed, Sealed]:
        """Encrypt once, the data key wrapped by this keyring and by `other`: two Sealed
        sharing one ciphertext, each opened by its own keyring alone (so shredding
        one's wrapped key leaves the other readable)."""
        data_key, ciphertext = _encrypt(content, context)
        key_id, wrapped = self.wrap(data_key)
        other_key_id, other_wrapped = other.wrap(data_key)
        return Sealed(key_id, wrapped, ciphertext), Sealed(other_key_id, other_wrapped, ciphertext)

    def open(self, sealed: Sealed, context: bytes) -> bytes:
        data_key = self.unwrap(sealed.key_id, sealed.wrapped_key)
        nonce = sealed.ciphertext[:_NONCE_BYTES]
        body = memoryview(sealed.ciphertext)[_NONCE_BYTES:]  # not a copy of a large message
        return AESGCM(data_key).decrypt(nonce, body, context)

    def rewrap(self, key_id: str, wrapped: bytes) -> tuple[str, bytes]:
        """Re-wrap a data key under the current master key (for rotation)."""
        return self.wrap(self.unwrap(key_id, wrapped))
