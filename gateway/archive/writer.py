"""The archive's copy of an accepted message, written with the message itself.

The content is encrypted once: the queue's copy and the archive's share one
ciphertext under one data key, wrapped once by the queue's master key and
once by the archive's (`Keyring.seal_shared`). Each side keeps its own copy of
the ciphertext and its own wrapped key, so shredding or rotating the queue's
keys never touches the archive. Intake calls `ArchiveWriter.place` before its transaction
(an object store's put is durable before the row that names it is written) and
`record` inside it, so the archive copy is durable before the 250.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from gateway.store.keyring import Keyring, Sealed

from . import records
from .records import ArchiveEntry
from .storage import ArchiveStorage


@dataclass(frozen=True)
class ArchiveCopy:
    """What intake archives of one message: its metadata, sealed copy and object key."""

    entry: ArchiveEntry
    sealed: Sealed
    storage: str = records.DATABASE  # set by `place`: the kind of storage that keeps it
    object_key: str | None = None  # set by `place` when the storage keeps objects


def entry_for(
    *,
    queue_id: str,
    kind: str,
    received_at: float,
    message_id: str | None,
    principal: str | None,
    sender: str,
    recipients: Sequence[str],
    category: str,
    phi: bool,
    stored: Sequence[bytes],
) -> ArchiveEntry:
    """The entry of a message stored as the concatenation of `stored`: its size and
    SHA-256 are of exactly those bytes (what an export must give back)."""
    digest = hashlib.sha256()
    for part in stored:
        digest.update(part)
    return ArchiveEntry(
        queue_id=queue_id,
        kind=kind,
        received_at=received_at,
        message_id=message_id,
        principal=principal,
        sender=sender,
        recipients=tuple(recipients),
        category=category,
        phi=phi,
        size=sum(len(part) for part in stored),
        sha256=digest.hexdigest(),
    )


class ArchiveWriter:
    """Seals with the archive's own master keys and keeps copies in its storage."""

    def __init__(self, keyring: Keyring, storage: ArchiveStorage) -> None:
        self.keyring = keyring
        self.storage = storage

    def seal(self, queue_keyring: Keyring, content: bytes, context: bytes) -> tuple[Sealed, Sealed]:
        """(the queue's sealed copy, the archive's): one encryption, two wrapped keys."""
        return queue_keyring.seal_shared(content, context, self.keyring)

    async def place(self, copy: ArchiveCopy) -> ArchiveCopy:
        """Put the ciphertext in the object store, if the storage has one; before the
        transaction that records it. Raises if it could not be kept."""
        object_key = None
        if self.storage.external:
            queue_id, ciphertext = copy.entry.queue_id, copy.sealed.ciphertext
            object_key = await asyncio.to_thread(self.storage.put, queue_id, ciphertext)
        return dataclasses.replace(copy, storage=self.storage.kind, object_key=object_key)


def record(conn: Connection, copy: ArchiveCopy) -> None:
    """The archive's row of a placed copy, in the transaction that stores the message."""
    records.record(conn, copy.entry, copy.sealed, storage=copy.storage, object_key=copy.object_key)
