"""Who may read the archive, and every access as an audit event.

Reading archived mail is the auditor's job: admins run the relay and are kept
apart from its content (separation of duties), so only the auditor role
searches, views, requests and exports. Under the two-person rule a second
person, an admin or another auditor, approves each export request; both
roles may list the requests.

Events hold the actor, the queue ids, counts, filter names and a reference to
the stated reason, never content. The reason itself (free text an auditor
writes, which may name a patient) is kept in `archive_requests` for requests
and exports, the event naming only the request; a search or a view has no
request, so its event holds the reason cut to REASON_CHARS.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Connection

from gateway.audit import trail
from gateway.audit.trail import AuditEvent

SEARCH = "archive_search"
VIEW = "archive_view"
REQUEST = "archive_request"
APPROVE = "archive_approve"
EXPORT = "archive_export"
LIST = "archive_requests"  # the export requests listed, with their reasons
EVENTS = (SEARCH, VIEW, REQUEST, APPROVE, EXPORT, LIST)

OK, REFUSED = "ok", "refused"

READERS = frozenset(("auditor",))
APPROVERS = frozenset(("admin", "auditor"))
REASON_CHARS = 60
_DETAIL_CHARS = 255  # audit_events.detail


class AccessRefused(Exception):
    """An access the archive refuses; `why` is the short fixed reason its audit event
    holds, the message what the person reads."""

    def __init__(self, why: str, message: str) -> None:
        super().__init__(message)
        self.why = why


def _roles(event: str) -> frozenset[str]:
    return APPROVERS if event in (APPROVE, LIST) else READERS


def may(role: str, event: str) -> bool:
    """Whether a person of `role` may make this access (one of EVENTS)."""
    return role in _roles(event)


def roles_for(event: str) -> str:
    return " or ".join(sorted(_roles(event)))


def reason_note(reason: str) -> str:
    """The stated reason as an event's detail word: one line, at most REASON_CHARS."""
    line = " ".join(reason.split())
    cut = line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 1] + "…"
    return '"' + cut.replace('"', "'") + '"'


def audited(
    conn: Connection,
    event: str,
    result: str,
    actor: str,
    detail: str,
    queue_ids: Sequence[str] = (),
    now: float | None = None,
) -> None:
    """Append one access event; a single message's queue id goes in its own field, so
    the message's timeline shows who looked at it."""
    trail.append(
        conn,
        [
            AuditEvent(
                event,
                result,
                queue_id=queue_ids[0] if len(queue_ids) == 1 else None,
                detail=detail[:_DETAIL_CHARS],
                actor=actor,
                ts=time.time() if now is None else now,
            )
        ],
    )
