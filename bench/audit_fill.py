"""A trail of `delivered` audit events for benchmarks that read the trail back
(bench/audit_forward_cost.py, bench/webhooks.py): metadata as delivery writes it,
a thousand events to a transaction."""

from __future__ import annotations

import time

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.store.database import Database


def fill_delivered(db: Database, count: int) -> None:
    """Append `count` delivered events, one message each, a second apart."""
    now = time.time()
    for start in range(0, count, 1000):
        with db.transaction() as conn:
            trail.append(
                conn,
                [
                    AuditEvent(
                        "delivered",
                        "2.0.0",
                        queue_id=f"Q{i:020d}",
                        principal="bench",
                        client_ip="127.0.0.1",
                        sender="app@bench.example.org",
                        recipients=("patient@bench.example.org",),
                        code=250,
                        detail="mode=tls tls=TLSv1.3 verify=pkix mx=127.0.0.1: 250 2.0.0 Ok",
                        ts=now + i,
                    )
                    for i in range(start, min(start + 1000, count))
                ],
            )
