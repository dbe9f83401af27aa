"""Master key rotation: re-wrap every data key under a new master key."""

from __future__ import annotations

from sqlalchemy import select, update

from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.store.schema import messages, sandbox_mail


def rotate(db: Database, keyring: Keyring) -> tuple[str, int]:
    """Returns (new key id, number of data keys re-wrapped)."""
    new_key = keyring.rotate()
    count = 0
    for table, key_column in ((messages, messages.c.queue_id), (sandbox_mail, sandbox_mail.c.id)):
        with db.transaction() as conn:
            rows = conn.execute(
                select(key_column, table.c.key_id, table.c.wrapped_key).where(
                    table.c.wrapped_key.is_not(None), table.c.key_id != new_key
                )
            ).all()
            for ident, key_id, wrapped in rows:
                new_id, rewrapped = keyring.rewrap(key_id, wrapped)
                conn.execute(
                    update(table)
                    .where(key_column == ident)
                    .values(key_id=new_id, wrapped_key=rewrapped)
                )
                count += 1
    return new_key, count
