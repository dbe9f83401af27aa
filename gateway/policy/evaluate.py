"""One message through the policy, in two I/O-free steps around the consent lookup.

1. `consider`: facts -> category -> purpose, and the consent the decision
   needs (`Considered.consent_needed`: which recipients, for which purpose; or
   none when no rule reads consent).
2. The caller fetches that consent: the server's intake asynchronously from
   the registry, `phigate policy explain` and `phigate policy test`
   synchronously (`evaluate`, `Considered.decide_from`).
3. `Considered.decide`: a decision per recipient.

The intake, `explain` and `policy test` all run these steps, so what an admin
sees is what the server does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message

from gateway.consent import ConsentSource
from gateway.consent.purpose import PurposeHeader
from gateway.inspect.findings import Findings
from gateway.policy.engine import CompiledPolicy, Decision, categorize, decide
from gateway.policy.facts import (
    Envelope,
    MessageFacts,
    header_from,
    header_names,
    header_value,
    message_facts,
)


@dataclass(frozen=True)
class Evaluation:
    policy_version: str
    facts: MessageFacts
    category: str
    category_rule: str | None
    decisions: list[Decision]
    # What consent was checked for: the category, refined for marketing by the
    # sender's purpose header (e.g. marketing/flu-clinic).
    purpose: str = ""

    @property
    def accepted(self) -> list[Decision]:
        return [d for d in self.decisions if not d.refused]

    @property
    def refused(self) -> list[Decision]:
        return [d for d in self.decisions if d.refused]


@dataclass(frozen=True)
class ConsentNeeded:
    """The consent lookup a decision waits for."""

    recipients: tuple[str, ...]
    purpose: str


@dataclass(frozen=True)
class Considered:
    """A message categorized, before consent is known (the first step)."""

    policy: CompiledPolicy
    envelope: Envelope
    facts: MessageFacts
    category: str
    category_rule: str | None
    purpose: str

    @property
    def consent_needed(self) -> ConsentNeeded | None:
        """What to look up before deciding; None if no rule reads consent."""
        if not self.policy.uses_consent:
            return None
        return ConsentNeeded(self.envelope.recipients, self.purpose)

    def decide(self, consent: Mapping[str, str]) -> Evaluation:
        """The second step: the decisions, given the consent state per recipient
        (a recipient left out is "none")."""
        decisions = decide(
            self.policy, self.facts, self.category, consent, self.envelope.recipients
        )
        return Evaluation(
            self.policy.version,
            self.facts,
            self.category,
            self.category_rule,
            decisions,
            self.purpose,
        )

    def decide_from(self, source: ConsentSource) -> Evaluation:
        """The second step, fetching the consent it needs from a synchronous source."""
        needed = self.consent_needed
        return self.decide(source.states(needed.recipients, needed.purpose) if needed else {})


def facts_for(
    policy: CompiledPolicy,
    envelope: Envelope,
    message: Message,
    size: int,
    findings: Findings,
    now: float,
) -> MessageFacts:
    return message_facts(
        envelope,
        header_from(message),
        header_names(message),
        header_value(message, policy.category_header),
        size,
        findings,
        now,
        policy.timezone,
    )


def consider(
    policy: CompiledPolicy,
    envelope: Envelope,
    message: Message,
    size: int,
    findings: Findings,
    now: float,
    purpose_header: PurposeHeader | None = None,
) -> Considered:
    """The first step. With `purpose_header`, marketing consent is for the sub-purpose
    the message names there (UnknownPurpose if it is not configured); without, for
    the category."""
    facts = facts_for(policy, envelope, message, size, findings, now)
    category, category_rule = categorize(policy, facts)
    purpose = (
        purpose_header.purpose(category, header_value(message, purpose_header.name))
        if purpose_header is not None
        else category
    )
    return Considered(policy, envelope, facts, category, category_rule, purpose)


def evaluate(
    policy: CompiledPolicy,
    envelope: Envelope,
    message: Message,
    size: int,
    findings: Findings,
    now: float,
    consent_source: ConsentSource,
    purpose_header: PurposeHeader | None = None,
) -> Evaluation:
    """The whole pipeline with a synchronous consent source."""
    considered = consider(policy, envelope, message, size, findings, now, purpose_header)
    return considered.decide_from(consent_source)
