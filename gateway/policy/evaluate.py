"""One message through the policy: facts -> category -> consent -> a decision per recipient.

The server's intake, `phigate policy explain` and `phigate policy test` all
call `evaluate`, so what an admin sees is what the server does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message

from gateway.consent import ConsentSource
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


def evaluate(
    policy: CompiledPolicy,
    envelope: Envelope,
    facts: MessageFacts,
    consent_source: ConsentSource,
) -> Evaluation:
    """Decide with a synchronous consent source, for the category's purpose."""
    category, category_rule = categorize(policy, facts)
    consent: Mapping[str, str] = (
        consent_source.states(envelope.recipients, category) if policy.uses_consent else {}
    )
    return decided(policy, envelope, facts, (category, category_rule), consent, category)


def decided(
    policy: CompiledPolicy,
    envelope: Envelope,
    facts: MessageFacts,
    category: tuple[str, str | None],
    consent: Mapping[str, str],
    purpose: str,
) -> Evaluation:
    """The decisions once the category and the recipients' consent are known."""
    decisions = decide(policy, facts, category[0], consent, envelope.recipients)
    return Evaluation(policy.version, facts, category[0], category[1], decisions, purpose)
