"""Secret key files in the keys directory: 256-bit hex keys, mode 0600.

Every process and node sharing the data dir must read the same key, so a new
key is written to a private temporary file and linked into place: a concurrent
creator that loses the race reads the winner's key instead of replacing it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from gateway.store.keyring import KeyringError

_KEY_BYTES = 32


def create_key_file(path: Path) -> None:
    """Write a new random key to `path` unless one is there already."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(_KEY_BYTES).hex().encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def read_key_file(path: Path, label: str, *, lost: str) -> bytes:
    """The key in `path`; `label` names it and `lost` says what stops working without it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyringError(
            f"no {label} at {path}: restore it from a backup of the keys directory "
            f"(without it {lost})"
        ) from None
    if mode & 0o077:
        raise KeyringError(f"{label} {path} is readable by group or others: run `chmod 600 {path}`")
    try:
        key = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise KeyringError(f"{label} {path} cannot be read as a hex key: {exc}") from None
    if len(key) != _KEY_BYTES:
        raise KeyringError(
            f"{label} {path} is not a 256-bit hex key: restore it from a backup, or "
            f"delete it ({lost})"
        )
    return key


def load_or_create(keys_dir: Path, file_name: str, what: str, if_lost: str) -> bytes:
    """The key in `keys_dir/file_name`, created first if absent (for keys whose loss
    costs only what `if_lost` says, such as the unsubscribe key)."""
    path = keys_dir / file_name
    create_key_file(path)
    return read_key_file(path, what, lost=if_lost)
