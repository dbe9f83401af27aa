"""The facts a policy decides on, gathered from the envelope, headers and findings.

Pure functions: the intake, `policy explain` and `policy test` all build facts
here, so the three can never disagree about what a message looks like.
Header values are read for two headers only: the address in From and the
policy's category header; no other header value, and never the subject,
becomes a fact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from zoneinfo import ZoneInfo

from gateway.inspect.findings import Findings
from gateway.mail.address_lists import address_list
from gateway.policy.model import WEEKDAYS

# Longest category header value worth comparing; anything longer matches nothing.
_HEADER_VALUE_MAX = 64
_ADDRESS_MAX = 320


@dataclass(frozen=True)
class Envelope:
    """What the SMTP session established (addresses already normalised)."""

    sender: str
    recipients: tuple[str, ...]
    principal: str | None = None
    authenticated: bool = False
    inbound_tls: bool = False


@dataclass(frozen=True)
class MessageFacts:
    """Facts that hold for every recipient of one message."""

    principal: str | None
    sender: str
    sender_domain: str
    from_address: str  # the address in the From header, "" if none can be read
    from_domain: str
    authenticated: bool
    inbound_tls: bool
    size: int
    headers: frozenset[str]  # names present, lower-case
    category_header: str | None  # value of the policy's category header, lower-case
    findings: Findings
    minute_of_day: int  # in the policy's time zone
    weekday: str  # mon .. sun


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def header_names(message: Message) -> frozenset[str]:
    return frozenset(name.lower() for name in message)


def header_value(message: Message, name: str) -> str | None:
    raw = message.get(name)
    if raw is None:
        return None
    value = " ".join(str(raw).split()).lower()
    return value if len(value) <= _HEADER_VALUE_MAX else None


def header_from(message: Message) -> str:
    """The first address of the From header, lower-cased domain; "" if there is none."""
    raw = message.get_all("From") or []
    addresses = [address for _, address in address_list(raw) if "@" in address]
    if not addresses or len(addresses[0]) > _ADDRESS_MAX:
        return ""
    local, _, domain = addresses[0].rpartition("@")
    return f"{local}@{domain.lower()}"


def message_facts(
    envelope: Envelope,
    from_address: str,
    headers: frozenset[str],
    category_header: str | None,
    size: int,
    findings: Findings,
    now: float,
    timezone: str,
) -> MessageFacts:
    local = datetime.fromtimestamp(now, ZoneInfo(timezone))
    return MessageFacts(
        principal=envelope.principal,
        sender=envelope.sender,
        sender_domain=domain_of(envelope.sender),
        from_address=from_address,
        from_domain=domain_of(from_address),
        authenticated=envelope.authenticated,
        inbound_tls=envelope.inbound_tls,
        size=size,
        headers=headers,
        category_header=category_header,
        findings=findings,
        minute_of_day=local.hour * 60 + local.minute,
        weekday=WEEKDAYS[local.weekday()],
    )
