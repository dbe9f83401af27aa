"""Which audit events are webhook events, and the body each becomes (pure).

A webhook body holds what the audit event holds and a receiver needs: the
queue id, one recipient, a status and a reply code, and the time. Never the
content, subject or any header value: the trail does not have them.

| audit event | webhook kind |
|---|---|
| `accepted` (one per recipient accepted) | `accepted` |
| `delivered`, `deferred` | the same |
| `bounced` | `bounced` (`consent_suppressed` if consent was withdrawn while queued) |
| `policy` refusing a recipient for consent revoked, expired, opted out | `consent_suppressed` |
| `portal_viewed` with `view=first` (the first time the message is opened) | `portal_opened` |
| `portal_expired` | `portal_expired` |
| `consent_opted_out` by the recipient's unsubscribe link | `unsubscribed` |
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.consent.states import WITHDRAWN

# The audit events worth reading at all, for the feed's query.
SOURCES = (
    "accepted",
    "delivered",
    "deferred",
    "bounced",
    "policy",
    "portal_viewed",
    "portal_expired",
    "consent_opted_out",
)
_SAME = frozenset(("delivered", "deferred"))
_CONSENT_MODE = "mode=consent"  # gateway.delivery.marketing's results, audited by delivery
TEST = "webhook.test"  # the type of `phigate webhook test`'s event


@dataclass(frozen=True)
class StatusEvent:
    """One webhook event about one recipient."""

    event_id: int  # the audit event it came from
    kind: str
    principal: str | None  # None: to be found from the store (portal expiry, unsubscribe)
    queue_id: str | None
    recipient: str
    status: str
    code: int | None
    ts: float

    def webhook_id(self, subscription_id: int, index: int) -> str:
        """The same for every attempt at this event to this subscription."""
        return f"msg_{self.event_id}_{index}_{subscription_id}"


def _words(detail: str | None) -> dict[str, str]:
    return dict(w.split("=", 1) for w in (detail or "").split() if "=" in w)


def kind_of(event: str, result: str, detail: str | None) -> str | None:
    """The webhook kind an audit event of this event, result and detail is, if any."""
    if event in _SAME or event == "accepted":
        return event
    if event == "bounced":
        return "consent_suppressed" if (detail or "").startswith(_CONSENT_MODE) else "bounced"
    if event == "policy":
        refused = result == "reject" and _words(detail).get("consent") in WITHDRAWN
        return "consent_suppressed" if refused else None
    if event == "portal_viewed":  # its first view only: the message was picked up
        return "portal_opened" if _words(detail).get("view") != "again" else None
    if event == "portal_expired":
        return "portal_expired"
    if event == "consent_opted_out" and _words(detail).get("source") == "unsubscribe":
        return "unsubscribed"
    return None


def from_audit(row: Mapping[Any, Any]) -> list[StatusEvent]:
    """The webhook events of one stored audit event: one per recipient it names."""
    kind = kind_of(row["event"], row["result"], row["detail"])
    if kind is None:
        return []
    recipients = json.loads(row["recipients"] or "[]")
    status = "refused" if row["event"] == "policy" else str(row["result"])
    return [
        StatusEvent(
            int(row["id"]),
            kind,
            row["principal"],
            row["queue_id"],
            str(rcpt),
            status,
            row["code"],
            float(row["ts"]),
        )
        for rcpt in recipients
    ]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body(type_: str, data: Mapping[str, object], ts: float) -> str:
    """The JSON body in the Standard Webhooks shape: type, timestamp, data."""
    document = {"type": type_, "timestamp": iso(ts), "data": dict(data)}
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def payload(event: StatusEvent) -> str:
    return body(
        f"message.{event.kind}",
        {
            "queue_id": event.queue_id,
            "recipient": event.recipient,
            "status": event.status,
            "code": event.code,
        },
        event.ts,
    )
