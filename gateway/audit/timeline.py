"""The life of one message, read from its audit events (`phigate audit show`).

Pure: it arranges events already read (gateway.audit.search.of_message) into
steps a reviewer follows — accepted, each recipient's policy decision, each
delivery attempt with its TLS evidence, the DSN, portal events, and admin
actions with who made them — and sums up what the message was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.audit.search import Event
from gateway.store.audit_facets import DELIVERY_EVENTS, facets, fields

# Steps, by what the event says about the message.
ACCEPTED, DECISION, ATTEMPT, DSN, PORTAL, ADMIN, OTHER = (
    "accepted", "decision", "attempt", "dsn", "portal", "admin", "other",
)  # fmt: skip
# Events an admin causes, whether or not they name who (older ones may not).
_ADMIN_EVENTS = frozenset(("released", "deleted", "retried", "portal_recalled", "portal_extended"))


def step_of(event: Event) -> str:
    if event.event in _ADMIN_EVENTS or event.actor is not None:
        return ADMIN
    if event.event == "accepted":
        return ACCEPTED
    if event.event == "policy":
        return DECISION
    if event.event in DELIVERY_EVENTS:
        return ATTEMPT
    if event.event == "dsn":
        return DSN
    if event.event.startswith("portal_"):
        return PORTAL
    return OTHER


@dataclass(frozen=True)
class Step:
    step: str
    event: Event
    facts: dict[str, str]  # what the detail says, as key=value (search keys among them)

    def as_json(self) -> dict[str, Any]:
        return {"step": self.step, **self.event.as_json(), "facts": self.facts}


@dataclass(frozen=True)
class Timeline:
    queue_id: str
    steps: list[Step]

    @property
    def found(self) -> bool:
        return bool(self.steps)

    def summary(self) -> dict[str, Any]:
        """What the message was: who sent it, how big, PHI or not, and how it ended."""
        accepted = next((s.event for s in self.steps if s.step == ACCEPTED), None)
        decisions = [s.facts for s in self.steps if s.step == DECISION]
        outcomes: dict[str, str] = {}
        for s in self.steps:
            if s.step in (ATTEMPT, ADMIN) and s.event.queue_id == self.queue_id:
                for rcpt in s.event.recipients:
                    outcomes[rcpt] = s.event.event
        return {
            "queue_id": self.queue_id,
            "accepted_at": accepted.ts if accepted else None,
            "principal": accepted.principal if accepted else None,
            "client_ip": accepted.client_ip if accepted else None,
            "sender": accepted.sender if accepted else None,
            "size": accepted.size if accepted else None,
            "message_id": facets("accepted", accepted.detail).message_id if accepted else None,
            "phi": (None if not decisions else any(d.get("phi") == "yes" for d in decisions)),
            "categories": sorted({d["category"] for d in decisions if "category" in d}),
            "outcomes": outcomes,  # recipient -> its last delivery event or admin action
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "queue_id": self.queue_id,
            "found": self.found,
            "summary": self.summary(),
            "steps": [s.as_json() for s in self.steps],
        }


def _facts(event: Event) -> dict[str, str]:
    if not event.detail:
        return {}
    if event.event in DELIVERY_EVENTS:
        # "head: the remote reply": the reply is text, not key=value words.
        head, _, reply = event.detail.partition(": ")
        return {**fields(head), **({"reply": reply} if reply else {})}
    return fields(event.detail)


def timeline(queue_id: str, events: Sequence[Event]) -> Timeline:
    """The steps of message `queue_id`, in the order its events were recorded."""
    return Timeline(queue_id, [Step(step_of(e), e, _facts(e)) for e in events])
