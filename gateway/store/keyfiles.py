"""Secret keys kept in files beside the master keys, never in the database.

Every process and node sharing the data dir must read the same key, so a new
key is written to a private temporary file and linked into place: a
concurrent creator that loses the race reads the winner's key instead of
replacing it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from gateway.store.keyring import KeyringError

_KEY_BYTES = 32


def load_or_create(keys_dir: Path, file_name: str, what: str, if_lost: str) -> bytes:
    """The 256-bit key in `keys_dir/file_name`, created (mode 0600, atomically) if absent.

    `what` names the key in errors ("unsubscribe key"); `if_lost` says what
    deleting it costs, for the error about a damaged file.
    """
    path = keys_dir / file_name
    if not path.exists():
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = keys_dir / f".{file_name}.{os.getpid()}.{secrets.token_hex(4)}"
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
    if path.stat().st_mode & 0o077:
        raise KeyringError(f"{what} {path} is readable by group or others: run `chmod 600 {path}`")
    try:
        key = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise KeyringError(f"{what} {path} cannot be read as a hex key: {exc}") from None
    if len(key) != _KEY_BYTES:
        raise KeyringError(
            f"{what} {path} is not a 256-bit hex key: restore it from a backup, or "
            f"delete it ({if_lost})"
        )
    return key
