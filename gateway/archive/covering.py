"""Which standing legal holds cover an archived message: what `archive show` lists.

A hold's selector is JSON (queue_ids, principal, sender, recipient, domain,
since, until, category); a message is covered when it matches every key the
selector gives. Read only: holds are placed and released elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection, select

from gateway.archive.search import Found
from gateway.audit.search import FilterError, parse_when
from gateway.mail.addresses import domain_of
from gateway.store.schema import legal_holds


@dataclass(frozen=True)
class Hold:
    id: int
    case_ref: str
    created_at: float
    created_by: str


def _timestamp(value: object, *, end: bool) -> float | None:
    """A selector's since/until: epoch seconds, or a date or ISO time as searches take them."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_when(value, end=end)
        except FilterError:
            return None
    return None


def _matches(key: str, value: object, message: Found) -> bool:
    if key == "queue_ids":
        return isinstance(value, list) and message.queue_id in value
    if key == "recipient":
        return value in message.recipients
    if key == "domain":
        return value == domain_of(message.sender) or any(
            value == domain_of(r) for r in message.recipients
        )
    if key in ("since", "until"):
        moment = _timestamp(value, end=key == "until")
        if moment is None:
            return False
        return message.received_at >= moment if key == "since" else message.received_at < moment
    if key in ("principal", "sender", "category"):
        return bool(value == getattr(message, key))
    return True  # a key this version does not know narrows nothing


def covers(selector: dict[str, object], message: Found) -> bool:
    """Whether a hold with this selector covers the message (an empty selector covers none)."""
    given = {k: v for k, v in selector.items() if v is not None}
    return bool(given) and all(_matches(k, v, message) for k, v in given.items())


def holds_covering(conn: Connection, message: Found) -> list[Hold]:
    """The standing (not released) holds that cover this message."""
    found = []
    for row in conn.execute(
        select(legal_holds).where(legal_holds.c.released_at.is_(None)).order_by(legal_holds.c.id)
    ):
        try:
            selector = json.loads(row.selector)
        except ValueError:
            selector = None
        # A selector that cannot be read is shown as covering: fail closed.
        if not isinstance(selector, dict) or covers(selector, message):
            found.append(Hold(row.id, row.case_ref, row.created_at, row.created_by))
    return found
