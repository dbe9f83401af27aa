"""Opt-outs by mail: the `mailto:` of List-Unsubscribe, received by phigate's listener.

The address `<mailto_local_part>+ID@<hostname>` stands for one (recipient,
purpose); the intake records what, in the transaction that queues the mail
carrying it (`remember`). Mail to it is an opt-out: the opt-out is recorded and the message
itself thrown away unread (never stored, inspected or relayed).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from gateway.config import Settings
from gateway.consent import registry
from gateway.consent.links import UnsubscribeLinks
from gateway.mail.addresses import domain_of
from gateway.store.database import Database
from gateway.store.schema import unsubscribe_mailto
from gateway.store.upsert import on_conflict_insert


@dataclass(frozen=True)
class MailtoTarget:
    mailto_id: str
    address: str
    purpose: str
    expires_at: float


def remember(conn: Connection, targets: Sequence[MailtoTarget]) -> None:
    """Record (or extend) what each mailto address stands for."""
    for target in targets:
        row = {
            "mailto_id": target.mailto_id,
            "address": target.address,
            "purpose": target.purpose,
            "expires_at": target.expires_at,
        }
        insert = on_conflict_insert(conn, unsubscribe_mailto).values(row)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["mailto_id"], set_={"expires_at": target.expires_at}
            )
        )


def _lookup(conn: Connection, ids: Sequence[str]) -> dict[str, MailtoTarget]:
    rows = conn.execute(
        select(unsubscribe_mailto).where(unsubscribe_mailto.c.mailto_id.in_(list(ids)))
    ).mappings()
    return {
        r["mailto_id"]: MailtoTarget(r["mailto_id"], r["address"], r["purpose"], r["expires_at"])
        for r in rows
    }


class MailtoUnsubscribe:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.links = UnsubscribeLinks(settings)
        self.db = db
        self.prefix = f"{settings.unsubscribe.mailto_local_part}+".lower()
        self.domain = settings.hostname.lower()
        # Recorded at intake, sent at most a queue lifetime later, then valid as long
        # as the link beside it.
        self.lifetime = self.links.lifetime + settings.delivery.max_queue_lifetime

    def target(self, address: str, purpose: str, now: float) -> MailtoTarget:
        """What the intake stores when it queues marketing mail for `address`."""
        return MailtoTarget(
            self.links.mailto_id(address, purpose), address, purpose, now + self.lifetime
        )

    def id_of(self, address: str) -> str | None:
        """The id of an unsubscribe address (any case), None for any other address."""
        local, _, _ = address.rpartition("@")
        if domain_of(address) != self.domain or not local.lower().startswith(self.prefix):
            return None
        return local[len(self.prefix) :].lower()

    async def problem(self, address: str) -> str | None:
        """Why mail to `address` cannot be taken without AUTH (an SMTP reply), or None."""
        mailto_id = self.id_of(address)
        if mailto_id is None:
            return "550 5.7.1 Relaying denied: authentication required"
        found = await self.db.read(lambda conn: _lookup(conn, [mailto_id]))
        target = found.get(mailto_id)
        if target is None:
            return "550 5.1.1 Unknown unsubscribe address"
        if target.expires_at <= time.time():
            return "550 5.7.1 This unsubscribe address has expired; use the link in a newer message"
        return None

    async def record(self, addresses: Sequence[str]) -> int:
        """Record the opt-outs the addresses stand for; returns how many were new."""
        ids = [i for a in addresses if (i := self.id_of(a)) is not None]
        now = time.time()

        def write(conn: Connection) -> int:
            return sum(
                registry.opt_out(
                    conn,
                    address=target.address,
                    purpose=target.purpose,
                    source="unsubscribe",
                    actor="mailto",
                    now=now,
                    reference=f"mailto:{target.mailto_id}",
                )
                for target in _lookup(conn, ids).values()
            )

        return await self.db.write(write)
