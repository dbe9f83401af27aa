"""Taking archived messages out: their exact accepted bytes, checked against intake's hash.

A message is exported only if it is known, not destroyed, opens under the
archive's keys (bound to its queue id) and hashes to the SHA-256 recorded
when it was accepted; anything else refuses the whole export, naming the
message and why, never its content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection

from gateway.archive.access import AccessRefused
from gateway.archive.search import Found, described
from gateway.archive.storage import ArchiveStorage, ArchiveStorageError, archived_sealed
from gateway.store.keyring import Keyring, KeyringError


def exportable(conn: Connection, queue_ids: Sequence[str]) -> list[Found]:
    """The messages, each once in the order asked; refused if one is unknown or destroyed."""
    wanted = list(dict.fromkeys(queue_ids))
    if not wanted:
        raise AccessRefused("no-messages", "name at least one queue id to export")
    found = described(conn, wanted)
    unknown = sorted(set(wanted) - {f.queue_id for f in found})
    if unknown:
        raise AccessRefused(
            "unknown-queue-id",
            f"not in the archive: {', '.join(unknown)} "
            "(find queue ids with `phigate archive search`)",
        )
    destroyed = [f.queue_id for f in found if f.destroyed]
    if destroyed:
        raise AccessRefused(
            "destroyed",
            f"destroyed by retention, so nothing is left to export: {', '.join(destroyed)}",
        )
    return found


def content(conn: Connection, keyring: Keyring, storage: ArchiveStorage, message: Found) -> bytes:
    """The accepted bytes of an archived message, verified against their recorded SHA-256."""
    try:
        sealed = archived_sealed(conn, storage, message.queue_id)
    except ArchiveStorageError as exc:
        raise AccessRefused("object-store", f"{message.queue_id}: {exc}") from None
    if sealed is None:
        raise AccessRefused("destroyed", f"{message.queue_id} was destroyed meanwhile")
    try:
        opened = keyring.open(sealed, message.queue_id.encode())
    except (InvalidTag, KeyringError, ValueError):
        raise AccessRefused(
            "unreadable",
            f"{message.queue_id} cannot be opened with the archive's keys (archive.keys_dir): "
            "restore the key it was sealed under, or it was altered",
        ) from None
    if hashlib.sha256(opened).hexdigest() != message.sha256:
        raise AccessRefused(
            "sha256-mismatch",
            f"{message.queue_id} does not match the SHA-256 recorded when it was accepted: "
            "it is not exported",
        )
    return opened
