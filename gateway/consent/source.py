"""Consent states from the registry, for the server's intake and delivery."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from gateway.config import ConsentConfig
from gateway.consent import registry
from gateway.consent.purpose import is_marketing
from gateway.store.database import Database


class RegistryConsent:
    """Looks up the consent state of recipients in the store (one query per call)."""

    def __init__(self, db: Database, config: ConsentConfig) -> None:
        self.db = db
        self.config = config

    async def states(self, recipients: Sequence[str], purpose: str) -> Mapping[str, str]:
        """The state of every recipient for `purpose`; "none" without a query for
        purposes other than marketing."""
        if not recipients or not is_marketing(purpose):
            return dict.fromkeys(recipients, "none")
        now = time.time()
        return await self.db.read(
            lambda conn: registry.states(conn, recipients, purpose, now, self.config)
        )
