"""Large sealed contents in files beside the SQLite database, one per queued message.

A row's content in SQLite costs a system call per 4 KiB page to write it to
the WAL, the same again when `secure_delete` zeroes it at shredding, and
copies at each checkpoint: about 13 ms of CPU for a 2 MB message, where a
file of its own costs about 1 (`bench/store_path.py --size`). So on SQLite a
message larger than `limits.large_message_size` keeps its ciphertext in
`<database>-contents/<queue id>` and its row keeps the rest: the data key
(wrapped), the key's id, and `content` NULL. A NULL content with a wrapped key
means "in its file"; both NULL means shredded, as before.

What must hold, and how:

- **Durable before 250.** The file is written, flushed (`fsync`) and its
  directory flushed before the row's commit is queued; the 250 follows the
  row's flushed commit as always. Intake writes it on a thread while the
  message is inspected, each piece as it is encrypted (`Keyring.seal_to`),
  and removes it if the message is not stored (`intake.Sealing`).
- **Encrypted at rest.** The file holds the same AES-GCM ciphertext a row
  would, bound to its queue ID; its data key is only in the database.
- **Shredding.** Shredding sets the row's wrapped key to NULL (so the file can
  never be opened again) in the transaction that shreds; the file is unlinked
  after the next checkpoint, once that transaction is on disk whatever
  happens (an outcome commit is not flushed by itself, and a crash before it
  reached the disk would deliver the message again, which needs the file).
  The server checkpoints within about a second of a shredding commit, the
  CLI at once. What an unlinked file leaves in the file system's free blocks
  is out of scope, as for the truncated WAL (docs/security.md).
- **Nothing left behind.** A file whose row was never committed (a crash
  between the two, or a store that failed) holds ciphertext whose key was
  never stored; it is removed once it is ten minutes old (a younger one
  might be a store in progress in another process), at start or after a
  checkpoint, as are the files whose rows are shredded. So a server process
  that crashed and was started again by the supervisor leaves nothing
  behind for long either.

PostgreSQL keeps every content in its row: nodes sharing the database must
each reach every message's content.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import Connection, select

from gateway.store.files import sync_directory, write_private_pieces
from gateway.store.schema import messages

_SWEEP_BATCH = 500  # queue IDs per query
# A file no row names is a store that failed or a crash's leftover once it is older
# than this: a store in progress commits its row within seconds.
_STRAY_AGE = 600.0


class ContentMissing(Exception):
    """A message's content file is gone while its row still holds the key."""


class ContentFiles:
    """The directory of one SQLite database's large contents."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, queue_id: str) -> Path:
        if not queue_id.isalnum():  # queue IDs are; never a path out of the directory
            raise ValueError("not a queue ID")
        return self.directory / queue_id

    def write(self, queue_id: str, ciphertext: Iterable[bytes]) -> None:
        """Store a content, its ciphertext in pieces, durably (file and directory entry
        flushed); raises OSError."""
        self.directory.mkdir(mode=0o700, exist_ok=True)
        write_private_pieces(self.path(queue_id), ciphertext)
        sync_directory(self.directory)

    def read(self, queue_id: str) -> bytes:
        """A content; raises ContentMissing if its file is gone."""
        try:
            return self.path(queue_id).read_bytes()
        except FileNotFoundError:
            raise ContentMissing(f"the content file of {queue_id} is missing") from None

    def remove(self, queue_ids: Iterable[str]) -> None:
        for queue_id in queue_ids:
            with contextlib.suppress(FileNotFoundError):
                self.path(queue_id).unlink()

    def stored(self) -> list[str]:
        """The queue IDs that have a file now."""
        try:
            return [entry.name for entry in os.scandir(self.directory) if entry.name.isalnum()]
        except OSError:  # none yet (or not a directory: then each write fails, with a 451)
            return []

    def sweep(self, conn: Connection, names: Sequence[str]) -> list[str]:
        """Of the files `names` (as `stored` lists them), remove those whose rows are
        shredded, and those no row names that are older than `_STRAY_AGE` (a younger
        one may belong to a store still in progress, in any process of the node). Only
        after a checkpoint: the shredding must be on disk first. Returns the queue IDs
        removed."""
        removed: list[str] = []
        for start in range(0, len(names), _SWEEP_BATCH):
            batch = names[start : start + _SWEEP_BATCH]
            rows = conn.execute(
                select(messages.c.queue_id, messages.c.wrapped_key.is_not(None)).where(
                    messages.c.queue_id.in_(batch)
                )
            ).all()
            keyed = {queue_id: bool(has_key) for queue_id, has_key in rows}
            removed += [name for name in batch if name in keyed and not keyed[name]]
            removed += [name for name in batch if name not in keyed and self._stray(name)]
        self.remove(removed)
        if removed:
            sync_directory(self.directory)
        return removed

    def _stray(self, queue_id: str) -> bool:
        """Whether a file no row names is old enough that no store can still be writing it."""
        try:
            return self.path(queue_id).stat().st_mtime < time.time() - _STRAY_AGE
        except FileNotFoundError:
            return False
