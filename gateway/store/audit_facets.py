"""Search keys of an audit event, derived from the fields its hash covers.

Several things a reviewer filters on live inside `detail` (the policy rule
and version of a decision, the delivery mode and TLS verification of an
attempt, the Message-ID of an accepted message, the message a DSN or portal
mail is about), and an event may name several recipients. They are kept
again in indexed columns (`audit_events.rule` ...) and in `audit_recipients`
so a search over millions of events reads an index instead of every detail.

They are derived, not recorded: `facets` computes them from the event, the
chain's hash leaves them out (gateway.audit.trail), and `phigate audit
verify` recomputes them, so a changed search key is found like a changed
event. Being derived, they are filled in after the event is appended, off
the relay's path (gateway.audit.indexer), for new events and for those
written before the search keys existed alike, without touching any hash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

# The delivery events (gateway.delivery.outcomes) and what their detail holds.
DELIVERY_EVENTS = frozenset(("delivered", "deferred", "bounced"))
# TLS verification kinds as searched: the client's own (gateway.delivery.client
# TlsEvidence.verified) but "no", which is TLS without verification; and "none",
# an attempt that used no TLS at all (a connection that failed, or mode portal).
TLS_KINDS = ("pkix", "mta-sts", "dane-ee", "dane-ta", "pin", "unverified", "none")
# Events that are about another message, whose queue id their detail names.
_ABOUT = re.compile(r"^(?:\w+ )?for ([A-Za-z0-9]{1,32})(?::|$)")
_MESSAGE_ID = "message-id="
_TOKEN = "token="  # an accepted message sent with an API token names it first
# Column widths (gateway.store.schema.audit_events).
RULE_CHARS, VERSION_CHARS, MODE_CHARS, MESSAGE_ID_CHARS = 64, 32, 32, 200


@dataclass(frozen=True)
class Facets:
    """The search keys of one event; None where the event has none."""

    rule: str | None = None
    policy_version: str | None = None
    mode: str | None = None
    tls: str | None = None
    message_id: str | None = None
    about: str | None = None

    def columns(self) -> dict[str, str | None]:
        return {
            "rule": self.rule,
            "policy_version": self.policy_version,
            "mode": self.mode,
            "tls": self.tls,
            "message_id": self.message_id,
            "about": self.about,
        }


COLUMNS = tuple(Facets().columns())


def fields(text: str) -> dict[str, str]:
    """The key=value words of a detail, first occurrence of each key."""
    found: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep and key and key not in found:
            found[key] = value
    return found


def _delivery(detail: str) -> Facets:
    # "mode=... [tls=... verify=...] [note] [mx=...]: the remote reply" — the
    # reply is the other side's text, so only the part before it is read.
    head = fields(detail.split(": ", 1)[0])
    mode = head.get("mode")
    if mode is None:
        return Facets()
    verify = head.get("verify")
    tls = "none" if verify is None else ("unverified" if verify == "no" else verify)
    return Facets(mode=mode[:MODE_CHARS], tls=tls[:16])


def facets(event: str, detail: str | None) -> Facets:
    """The search keys of an event named `event` with this detail."""
    if not detail:
        return Facets()
    if event == "policy":
        words = fields(detail)
        rule, version = words.get("rule"), words.get("policy")
        return Facets(
            rule=rule[:RULE_CHARS] if rule else None,
            policy_version=version[:VERSION_CHARS] if version else None,
        )
    if event in DELIVERY_EVENTS:
        return _delivery(detail)
    if event == "accepted":
        rest = detail.partition(" ")[2] if detail.startswith(_TOKEN) else detail
        if rest.startswith(_MESSAGE_ID):
            return Facets(message_id=rest[len(_MESSAGE_ID) :][:MESSAGE_ID_CHARS] or None)
    if event in ("dsn", "portal_mail"):
        about = _ABOUT.match(detail)
        return Facets(about=about.group(1) if about else None)
    return Facets()


def accepted_detail(token: str | None, message_id: str | None) -> str | None:
    """The detail of an `accepted` event: the API token the message was sent with, if
    any, then its Message-ID (as recordable), within the column's 255 characters."""
    words = ([f"{_TOKEN}{token}"] if token else []) + (
        [f"{_MESSAGE_ID}{message_id[:MESSAGE_ID_CHARS]}"] if message_id else []
    )
    return " ".join(words)[:255] or None


def accepted_token(detail: str | None) -> str | None:
    """The API token an `accepted` event's detail names, if any."""
    if not detail or not detail.startswith(_TOKEN):
        return None
    return detail.partition(" ")[0][len(_TOKEN) :] or None


def recipient_rows(event_id: int, recipients: Sequence[str]) -> list[dict[str, object]]:
    """The `audit_recipients` rows of an event: each address once, lower-cased, with its domain."""
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    for address in recipients:
        folded = address.lower()
        if folded in seen:
            continue
        seen.add(folded)
        rows.append({"event_id": event_id, "recipient": folded, "domain": domain_of(folded)})
    return rows


def listed_recipients(stored: str | None) -> list[str]:
    """The addresses of an event's `recipients` column (a JSON list); [] if it is not one,
    which only an edited event can be (its hash then tells `audit verify` so)."""
    try:
        listed = json.loads(stored or "[]")
    except ValueError:
        return []
    return [str(a) for a in listed] if isinstance(listed, list) else []


def domain_of(address: str) -> str:
    """The domain of an address as searched: lower-case, "" for an address without one."""
    return address.rpartition("@")[2].lower() if "@" in address else ""
