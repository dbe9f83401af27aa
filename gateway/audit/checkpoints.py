"""Signed checkpoints of the audit chain: stored, exported and read back.

A checkpoint says "the chain had `count` events up to event `event_id`, whose
hash was `hash`", signed with the audit key (HMAC-SHA256 under its own
subkey). HMAC rather than a public-key signature: whoever verifies a
checkpoint against the trail needs the audit key anyway to recompute the
chain, and one secret is one thing less to keep. An exported checkpoint is
protected by being kept elsewhere; its signature shows phigate made it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select

from gateway.store.audit_key import AuditKey
from gateway.store.schema import audit_checkpoints

EXPORT_FORMAT = "phigate-audit-checkpoint/1"
_SIGNED_FIELDS = ("created_at", "event_id", "hash", "count", "key_id")


class CheckpointFileError(Exception):
    """An exported checkpoint file that cannot be read."""


@dataclass(frozen=True)
class Checkpoint:
    created_at: float
    event_id: int  # 0: the chain was empty
    hash: str
    count: int
    key_id: str
    signature: str
    id: int | None = None  # the row in audit_checkpoints; None for an exported one

    def signed_bytes(self) -> bytes:
        fields = {name: getattr(self, name) for name in _SIGNED_FIELDS}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def authentic(self, key: AuditKey) -> bool:
        return self.key_id == key.key_id and key.signed(self.signed_bytes(), self.signature)

    @property
    def label(self) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at))
        name = f"checkpoint #{self.id}" if self.id is not None else "exported checkpoint"
        return f"{name} of {stamp}"

    def exported(self) -> dict[str, Any]:
        fields = {name: getattr(self, name) for name in _SIGNED_FIELDS}
        return {"format": EXPORT_FORMAT, **fields, "signature": self.signature, "id": self.id}


def sign(key: AuditKey, event_id: int, chain_hash: str, count: int, now: float) -> Checkpoint:
    unsigned = Checkpoint(now, event_id, chain_hash, count, key.key_id, "")
    return Checkpoint(
        now, event_id, chain_hash, count, key.key_id, key.sign(unsigned.signed_bytes())
    )


def store(conn: Connection, checkpoint: Checkpoint) -> Checkpoint:
    fields = {name: getattr(checkpoint, name) for name in (*_SIGNED_FIELDS, "signature")}
    row_id = conn.execute(insert(audit_checkpoints).values(**fields)).inserted_primary_key
    assert row_id is not None
    return Checkpoint(**fields, id=int(row_id[0]))


def _from_row(row: Any) -> Checkpoint:
    return Checkpoint(
        float(row.created_at),
        int(row.event_id),
        str(row.hash),
        int(row.count),
        str(row.key_id),
        str(row.signature),
        int(row.id),
    )


def newest(conn: Connection) -> Checkpoint | None:
    query = select(audit_checkpoints).order_by(audit_checkpoints.c.id.desc()).limit(1)
    row = conn.execute(query).first()
    return _from_row(row) if row is not None else None


def every(conn: Connection) -> list[Checkpoint]:
    query = select(audit_checkpoints).order_by(audit_checkpoints.c.id)
    return [_from_row(row) for row in conn.execute(query)]


def read_file(path: Path) -> Checkpoint:
    """A checkpoint exported with `phigate audit checkpoint --output`."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointFileError(f"cannot read checkpoint file {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise CheckpointFileError(
            f'{path} is not an exported audit checkpoint (expected "format": '
            f'"{EXPORT_FORMAT}"; make one with `phigate audit checkpoint --output FILE`)'
        )
    try:
        return Checkpoint(
            float(data["created_at"]),
            int(data["event_id"]),
            str(data["hash"]),
            int(data["count"]),
            str(data["key_id"]),
            str(data["signature"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointFileError(f"checkpoint file {path} lacks or mangles {exc}") from None
