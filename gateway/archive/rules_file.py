"""The retention rules file (archive.retention.rules_file): strict YAML, located errors.

```yaml
version: 1
audit_events: 6y              # how long audit events are kept (default 6y)
rules:                        # first match wins
  - name: marketing
    match: {category: marketing, phi: false}
    keep: 2y
default:
  keep: 6y
```

A rule's `match` is written like a policy rule's conditions
(gateway.policy.model.Conditions), limited to what an archived message
records: category, principal, phi, sender_domain, recipient_domain.
Audit events kept less than six years need `acknowledge_short_audit_retention:
true` in the file. docs/retention.md describes every field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from gateway.archive.retention import (
    DEFAULT_RULE,
    SIX_YEARS,
    Match,
    Period,
    Rule,
    Schedule,
    parse_period,
)
from gateway.policy.engine import DomainSet
from gateway.policy.loader import POLICY_SCHEMA
from gateway.policy.model import Conditions, Name, StrictModel
from gateway.strict_yaml import YamlDocument, YamlError
from gateway.yaml_models import ModelErrors, ModelSchema, read_text, validate_text

# What an archived message records (gateway.archive.records), hence what a rule may test.
MATCHABLE = ("category", "principal", "phi", "sender_domain", "recipient_domain")
_PERIOD_HINT = "write e.g. 6y, 18mo, 2w, 90d, or forever"


def _period(value: str) -> str:
    parse_period(value)
    return value


class RetentionRule(StrictModel):
    """One rule: the messages it matches, and how long their content is kept."""

    name: Name = Field(description="shown by explain and in destruction records")
    match: Conditions = Field(
        description="conditions, all of which must hold: " + ", ".join(MATCHABLE)
    )
    keep: str = Field(description="how long the content is kept: 6y, 18mo, 2w, 90d or forever")

    _keep = field_validator("keep")(_period)


class DefaultRule(StrictModel):
    """What applies to a message no rule matches."""

    keep: str = Field(description="how long the content is kept: 6y, 18mo, 2w, 90d or forever")

    _keep = field_validator("keep")(_period)


class RetentionFile(StrictModel):
    """The retention rules file, version 1."""

    version: Literal[1]
    audit_events: str = Field(
        default=SIX_YEARS.text,
        description="how long audit events are kept: 6y or more, or forever",
    )
    acknowledge_short_audit_retention: bool = Field(
        default=False, description="true: audit_events may be shorter than six years"
    )
    rules: list[RetentionRule] = Field(default_factory=list, description="first match wins")
    default: DefaultRule

    _audit = field_validator("audit_events")(_period)


SCHEMA = ModelSchema(
    RetentionFile,
    value_hints=(("is not a period", _PERIOD_HINT), *POLICY_SCHEMA.value_hints),
    fallback_hint="see docs/retention.md for this setting",
)


class RetentionRulesError(ModelErrors):
    """Every problem found in a retention rules file."""


def load_schedule(path: Path) -> Schedule:
    """Read, validate and compile a rules file; RetentionRulesError on any problem."""
    try:
        return parse_schedule(read_text(path, "retention rules file"), str(path))
    except YamlError as exc:
        raise RetentionRulesError([exc]) from None


def parse_schedule(text: str, source: str) -> Schedule:
    try:
        doc, written = validate_text(
            SCHEMA,
            text,
            source,
            "a retention rules file",
            "sections",
            'start with "version: 1", then rules: and default:',
        )
    except ModelErrors as exc:
        raise RetentionRulesError(exc.problems) from None
    problems = _cross_checks(doc, written)
    if problems:
        raise RetentionRulesError(problems)
    return Schedule(
        tuple(_rule(doc, i, r) for i, r in enumerate(written.rules)),
        Rule(
            DEFAULT_RULE,
            parse_period(written.default.keep),
            Match(),
            doc.key_mark(("default",)).line,
        ),
        parse_period(written.audit_events),
        written.acknowledge_short_audit_retention,
        source,
    )


def _cross_checks(doc: YamlDocument, written: RetentionFile) -> list[YamlError]:
    problems = []
    seen: dict[str, int] = {}
    for index, rule in enumerate(written.rules):
        at = ("rules", index)
        if rule.name in seen or rule.name == DEFAULT_RULE:
            problems.append(
                doc.error(
                    (*at, "name"),
                    f"rule name {rule.name!r} is used twice"
                    if rule.name in seen
                    else f"{DEFAULT_RULE!r} names the default: a rule needs another name",
                    "give every rule its own name: records and explain show it",
                )
            )
        seen[rule.name] = index
        tested = sorted(rule.match.model_fields_set)
        for name in tested:
            if name not in MATCHABLE:
                problems.append(
                    doc.error(
                        (*at, "match", name),
                        f"retention rules cannot test {name}: an archived message records "
                        "only " + ", ".join(MATCHABLE),
                        "remove it, or match on one of those",
                        at_key=True,
                    )
                )
        if not tested:
            problems.append(
                doc.error(
                    (*at, "match"),
                    "a rule must test something (an empty match would take every message)",
                    "add a condition, or set default: keep: instead",
                )
            )
    audit = parse_period(written.audit_events)
    if (
        audit is not None
        and audit.shorter_than(SIX_YEARS)
        and not written.acknowledge_short_audit_retention
    ):
        problems.append(
            doc.error(
                ("audit_events",),
                f"audit events kept {audit.text} is less than 6 years, the period HIPAA asks "
                "compliance documentation to be kept",
                "write 6y or more, or add acknowledge_short_audit_retention: true if this is "
                "deliberate",
            )
        )
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


def _rule(doc: YamlDocument, index: int, written: RetentionRule) -> Rule:
    tested = written.match

    def chosen(values: list[str] | None) -> frozenset[str] | None:
        return None if values is None else frozenset(values)

    match = Match(
        categories=chosen(tested.category),
        principals=chosen(tested.principal),
        phi=tested.phi,
        sender_domains=DomainSet.of(tested.sender_domain) if tested.sender_domain else None,
        recipient_domains=DomainSet.of(tested.recipient_domain)
        if tested.recipient_domain
        else None,
    )
    keep: Period | None = parse_period(written.keep)
    return Rule(written.name, keep, match, doc.key_mark(("rules", index)).line)
