"""Archived messages for retention and hold tests: real rows, sealed with a real keyring."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import Connection

from gateway.archive.records import MESSAGE, ArchiveEntry, record
from gateway.store.keyring import Keyring

DAY = 86400.0
YEAR = 365.25 * DAY

RULES = """\
version: 1
rules:
  - name: marketing
    match: {category: marketing}
    keep: 90d
  - name: legal-forever
    match: {principal: legal}
    keep: forever
default:
  keep: 6y
"""


def write_rules(directory: Path, text: str = RULES) -> Path:
    path = directory / "retention.yaml"
    path.write_text(text)
    return path


def archive(
    conn: Connection,
    keyring: Keyring,
    queue_id: str,
    received_at: float,
    *,
    content: bytes = b"Subject: hello\r\n\r\nbody\r\n",
    category: str = "treatment",
    principal: str | None = "ehr1",
    sender: str = "dr@clinic.example",
    recipients: tuple[str, ...] = ("pat@example.org",),
    phi: bool = True,
) -> bytes:
    """Archive one message; returns its ciphertext (what destruction must remove)."""
    entry = ArchiveEntry(
        queue_id,
        MESSAGE,
        received_at,
        f"<{queue_id.lower()}@clinic.example>",
        principal,
        sender,
        recipients,
        category,
        phi,
        len(content),
        hashlib.sha256(content).hexdigest(),
    )
    sealed = keyring.seal(content, queue_id.encode())
    record(conn, entry, sealed)
    return sealed.ciphertext
