"""Files the store writes beside the database (master keys, large contents): new, private,
and on disk before anything that names them is committed."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def write_private(path: Path, data: bytes) -> None:
    """Create `path` (mode 0600; never over an existing file) holding `data`, flushed."""
    write_private_pieces(path, (data,))


def write_private_pieces(path: Path, pieces: Iterable[bytes]) -> None:
    """`write_private` of `pieces` one after another, each written as it is taken (so
    a content encrypted piece by piece is never whole in memory)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        for piece in pieces:
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_directory(directory: Path) -> None:
    """Make a new, renamed or removed entry of `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
