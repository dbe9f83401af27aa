"""Why an archived message is kept or destroyed: its rule, when it is due, its holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from gateway.archive import holds, records
from gateway.archive.holds import Hold
from gateway.archive.retention import Rule, Schedule, due_at, rule_for, show
from gateway.store.schema import archived_messages


@dataclass(frozen=True)
class Explanation:
    queue_id: str
    received_at: float
    rule: Rule
    due_at: float | None  # None: kept forever
    holds: list[Hold]  # every hold that covers it, released ones too
    destroyed_at: float | None
    destruction_id: int | None

    @property
    def held(self) -> bool:
        return any(h.standing for h in self.holds)

    def as_json(self) -> dict[str, Any]:
        return {
            "queue_id": self.queue_id,
            "received_at": self.received_at,
            "rule": self.rule.name,
            "keep": show(self.rule.keep),
            "due_at": self.due_at,
            "held": self.held,
            "holds": [
                {"id": h.id, "case_ref": h.case_ref, "standing": h.standing} for h in self.holds
            ],
            "destroyed_at": self.destroyed_at,
            "destruction_id": self.destruction_id,
        }


def explain(conn: Connection, schedule: Schedule, queue_id: str) -> Explanation | None:
    """None: no archived message has this queue id."""
    found = records.entries(conn, [queue_id])
    if not found:
        return None
    entry = found[0]
    m = archived_messages.c
    destroyed_at, destruction_id = conn.execute(
        select(m.destroyed_at, m.destruction_id).where(m.queue_id == queue_id)
    ).one()
    rule = rule_for(schedule, entry)
    return Explanation(
        queue_id,
        entry.received_at,
        rule,
        due_at(rule, entry),
        holds.covering(conn, queue_id, released_too=True),
        destroyed_at,
        destruction_id,
    )
