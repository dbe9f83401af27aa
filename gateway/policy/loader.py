"""Load a policy directory: strict YAML, schema validation, cross-checks, compilation.

Every `*.yaml` / `*.yml` file directly in the directory is read, in name
order; sub-directories (such as `tests/`) are not. All problems of all files
are collected and reported together, each with file:line:column, what is
wrong and how to fix it. A directory with any problem yields no policy at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.consent.states import CONSENT_STATES
from gateway.policy.engine import (
    CompiledCategoryRule,
    CompiledPolicy,
    CompiledRule,
    DomainSet,
    Group,
    Outcome,
    PortalChoice,
    TransportRequirement,
    compile_conditions,
)
from gateway.policy.model import (
    CATEGORIES,
    WEEKDAYS,
    CategoryRule,
    Conditions,
    Defaults,
    PolicyFile,
    PolicySettings,
    PortalBlock,
    Rule,
)
from gateway.strict_yaml import KeyPath, YamlDocument, YamlError, describe_value, load_yaml
from gateway.yaml_models import ModelErrors, ModelSchema, read_text, validate_document

__all__ = [
    "PolicyError",
    "load_policy",
    "load_policy_texts",
    "policy_files",
    "policy_json_schema",
    "shipped_policy_dir",
]

POLICY_SCHEMA = ModelSchema(
    PolicyFile,
    value_hints=(
        ("is not a domain", "write e.g. example.org or *.example.org"),
        ("is not an email address", "write e.g. billing@example.org"),
        ("is not a time range", 'write e.g. "08:00-18:00" (in quotes)'),
        ("is not a size", "write e.g. 10MB, 500KB or 1048576"),
        ("is not a header name", "write e.g. X-Campaign-Id"),
        ("is not a time zone", "write e.g. America/New_York or UTC"),
        ("a range needs", "write e.g. at_least: 3"),
        ("needs a reason", 'add e.g. reason: "Marketing needs an authorization"'),
        ("apply to deliver and hold only", "remove them, or change the action"),
        ("applies to reject and hold only", "remove the reason"),
        ("via lists a mode twice", "list each of standard, tls, smime, portal at most once"),
        ("portal block applies to deliver", "remove the portal block, or change the action"),
        ("neither a content type nor an extension", "write e.g. application/pdf, image/* or .zip"),
        ("printable ASCII", "keep it to one line of plain ASCII text"),
        ("is listed twice", "keep one of them"),
        ("is not a valid name", "write e.g. marketing-needs-consent"),
        ("is not a category", "write one of " + ", ".join(CATEGORIES)),
        ("is not a consent state", "write one of " + ", ".join(CONSENT_STATES)),
        ("is not a PHI type", "write one of the PHI types listed in docs/policy.md"),
        ("is not a weekday", "write one of " + ", ".join(WEEKDAYS)),
    ),
    fallback_hint="see docs/policy.md for this setting",
)

# Conditions a category rule may not use: the category does not exist yet,
# and categories belong to the message, not to one recipient.
_NOT_FOR_CATEGORIES = ("recipient", "recipient_domain", "recipient_group", "consent", "category")


class PolicyError(ModelErrors):
    """Every problem found in a policy directory."""


def policy_json_schema() -> dict[str, Any]:
    """JSON Schema of one policy file, for editors (`phigate policy schema`)."""
    schema = PolicyFile.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "phigate policy file, version 1",
    }


def shipped_policy_dir() -> Path:
    """The default policy shipped with phigate (the repository's policies/)."""
    return Path(str(resources.files("gateway") / "policies"))


def policy_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_policy(directory: Path) -> CompiledPolicy:
    """Load and compile every policy file in `directory`; raise PolicyError on any problem."""
    source = str(directory)
    if not directory.is_dir():
        raise PolicyError(
            [
                YamlError(
                    source,
                    None,
                    None,
                    "is not a directory of policy files",
                    "set policy_dir to a directory holding *.yaml policy files",
                )
            ]
        )
    texts: list[tuple[str, str]] = []
    problems: list[YamlError] = []
    for path in policy_files(directory):
        try:
            texts.append((str(path), read_text(path, "policy file")))
        except YamlError as exc:
            problems.append(exc)
    if problems:
        raise PolicyError(problems)
    if not texts:
        raise PolicyError(
            [
                YamlError(
                    source,
                    None,
                    None,
                    "holds no policy files (*.yaml)",
                    "add a file such as default.yaml; copy the shipped policies/ to start",
                )
            ]
        )
    return load_policy_texts(texts)


def load_policy_texts(texts: Sequence[tuple[str, str]]) -> CompiledPolicy:
    """Load a policy from (file name, text) pairs, merged in the given order."""
    parsed: list[tuple[YamlDocument, PolicyFile]] = []
    problems: list[YamlError] = []
    for source, text in texts:
        try:
            doc = load_yaml(text, source)
        except YamlError as exc:
            problems.append(exc)
            continue
        data = doc.data
        if not isinstance(data, dict):
            problems.append(
                doc.error(
                    (),
                    f"a policy file holds key: value sections, but this one holds "
                    f"{describe_value(data)}",
                    'start with "version: 1", then rules:, recipient_groups: and so on',
                )
            )
            continue
        try:
            parsed.append((doc, validate_document(POLICY_SCHEMA, doc, data)))
        except ModelErrors as exc:
            problems.extend(exc.problems)
    if problems:
        raise PolicyError(problems)
    merged = _merge(parsed)
    version = hashlib.sha256()
    for source, text in texts:
        version.update(Path(source).name.encode() + b"\0" + text.encode() + b"\0")
    return _compile(merged, version.hexdigest()[:16], tuple(s for s, _ in texts))


# --- merging files and cross-checking -------------------------------------------------


@dataclass
class _Merged:
    settings: PolicySettings
    defaults: Defaults
    recipient_groups: dict[str, Any]
    sender_groups: dict[str, Any]
    category_rules: list[Any]
    rules: list[Rule]
    transport: list[Any]


def _where(doc: YamlDocument, path: KeyPath) -> str:
    mark = doc.key_mark(path)
    return f"{doc.source}:{mark.line}"


def _merge(files: list[tuple[YamlDocument, PolicyFile]]) -> _Merged:
    problems: list[YamlError] = []
    first_file: dict[str, YamlDocument] = {}  # where settings / defaults are given
    groups: dict[str, dict[str, tuple[YamlDocument, Any]]] = {
        "recipient_groups": {},
        "sender_groups": {},
    }
    rule_ids: dict[str, tuple[YamlDocument, KeyPath]] = {}
    merged = _Merged(PolicySettings(), Defaults(), {}, {}, [], [], [])

    for doc, policy in files:
        for section in ("settings", "defaults"):
            value = getattr(policy, section)
            if value is None:
                continue
            first = first_file.get(section)
            if first is not None:
                problems.append(
                    doc.error(
                        (section,),
                        f"{section} are already given in {_where(first, (section,))}",
                        f"keep {section} in one file only",
                        at_key=True,
                    )
                )
                continue
            first_file[section] = doc
            setattr(merged, section, value)
        for section in ("recipient_groups", "sender_groups"):
            for name, group in getattr(policy, section).items():
                seen = groups[section].get(name)
                if seen is not None:
                    problems.append(
                        doc.error(
                            (section, name),
                            f'group "{name}" is already defined in '
                            f"{_where(seen[0], (section, name))}",
                            "give it another name, or merge the two definitions",
                            at_key=True,
                        )
                    )
                    continue
                groups[section][name] = (doc, group)
        sections: tuple[tuple[str, Sequence[CategoryRule | Rule]], ...] = (
            ("categories", policy.categories),
            ("rules", policy.rules),
        )
        for section, rules in sections:
            for index, rule in enumerate(rules):
                path: KeyPath = (section, index, "id")
                seen_rule = rule_ids.get(rule.id)
                if seen_rule is not None:
                    problems.append(
                        doc.error(
                            path,
                            f'rule id "{rule.id}" is already used in '
                            f"{_where(seen_rule[0], seen_rule[1])}",
                            "give every rule (category or delivery) its own id",
                        )
                    )
                    continue
                rule_ids[rule.id] = (doc, path)
        merged.category_rules.extend(policy.categories)
        merged.rules.extend(policy.rules)
        merged.transport.extend(policy.transport)

    merged.recipient_groups = {n: g for n, (_, g) in groups["recipient_groups"].items()}
    merged.sender_groups = {n: g for n, (_, g) in groups["sender_groups"].items()}

    for doc, policy in files:
        for index, category_rule in enumerate(policy.categories):
            base: KeyPath = ("categories", index, "when")
            for path, key, value in _walk(category_rule.when, base):
                if key in _NOT_FOR_CATEGORIES:
                    problems.append(
                        doc.error(
                            path,
                            f"a category rule cannot test {key}: the category belongs to the "
                            "whole message and is decided before any recipient is looked at",
                            "move this condition to a delivery rule under rules:",
                            at_key=True,
                        )
                    )
                problems.extend(_unknown_groups(doc, path, key, value, merged))
        for index, rule in enumerate(policy.rules):
            for path, key, value in _walk(rule.when, ("rules", index, "when")):
                problems.extend(_unknown_groups(doc, path, key, value, merged))
    problems.extend(_unused_portal_blocks(files, merged, first_file.get("defaults")))
    if problems:
        problems.sort(key=lambda p: (p.source, p.line or 0, p.column or 0))
        raise PolicyError(problems)
    return merged


def _show_via(via: Sequence[str]) -> str:
    return "[" + ", ".join(via) + "]"


def _unused_portal_blocks(
    files: list[tuple[YamlDocument, PolicyFile]], merged: _Merged, defaults_doc: YamlDocument | None
) -> list[YamlError]:
    """A portal block where no via names portal would silently do nothing: refuse it."""
    problems = []
    portal_anywhere = "portal" in merged.defaults.via
    for doc, policy in files:
        for index, rule in enumerate(policy.rules):
            via = rule.via or merged.defaults.via
            portal_anywhere = portal_anywhere or (rule.action != "reject" and "portal" in via)
            if rule.portal is None or "portal" in via:
                continue
            if rule.via:
                message = (
                    f'rule "{rule.id}" has a portal block, but its via {_show_via(via)} '
                    "does not name portal"
                )
                hint = "add portal to via (e.g. via: [tls, portal]), or remove the portal block"
            else:
                source = (
                    "the built-in defaults"
                    if defaults_doc is None
                    else f"the defaults in {_where(defaults_doc, ('defaults',))}"
                )
                message = (
                    f'rule "{rule.id}" has a portal block, but the via it takes from '
                    f"{source}, {_show_via(via)}, does not name portal"
                )
                hint = (
                    "give the rule a via that names portal (e.g. via: [tls, portal]), "
                    "or remove the portal block"
                )
            problems.append(doc.error(("rules", index, "portal"), message, hint, at_key=True))
    if merged.defaults.portal is not None and not portal_anywhere and defaults_doc is not None:
        problems.append(
            defaults_doc.error(
                ("defaults", "portal"),
                "the defaults' portal block applies to no decision: neither the defaults' via "
                f"{_show_via(merged.defaults.via)} nor any rule's via names portal",
                "add portal to a via (e.g. via: [tls, portal]), or remove the portal block",
                at_key=True,
            )
        )
    return problems


def _walk(conditions: Conditions | None, base: KeyPath) -> Iterator[tuple[KeyPath, str, Any]]:
    """(path in the file, condition key, value) for every condition, nested ones too."""
    if conditions is None:
        return
    for key in Conditions.model_fields:
        value = getattr(conditions, key)
        if value is None:
            continue
        written = "not" if key == "not_" else key
        path = (*base, written)
        if key in ("any_of", "all_of"):
            for index, group in enumerate(value):
                yield from _walk(group, (*path, index))
        elif key == "not_":
            yield from _walk(value, path)
        else:
            yield path, written, value


def _unknown_groups(
    doc: YamlDocument, path: KeyPath, key: str, value: Any, merged: _Merged
) -> list[YamlError]:
    known = {"recipient_group": merged.recipient_groups, "sender_group": merged.sender_groups}
    if key not in known:
        return []
    section = f"{key}s"
    problems = []
    for index, name in enumerate(value):
        if name not in known[key]:
            defined = ", ".join(sorted(known[key])) or "none yet"
            problems.append(
                doc.error(
                    (*path, index) if (*path, index) in doc.value_marks else path,
                    f'no {key.replace("_", " ")} is named "{name}" (defined: {defined})',
                    f"define it under {section}:, or correct the name",
                )
            )
    return problems


# --- compiling ----------------------------------------------------------------------------


def _group(name: str, spec: Any) -> Group:
    return Group(
        name,
        DomainSet.of(spec.domains),
        frozenset(spec.addresses),
        frozenset(getattr(spec, "principals", ())),
    )


def _outcome(rule: Rule | Defaults, defaults: Defaults) -> Outcome:
    deliver = rule.action != "reject"  # a held message is delivered once released
    via = tuple(rule.via or defaults.via) if deliver else ()
    return Outcome(
        action=rule.action,
        via=via,
        reason=rule.reason,
        subject=(rule.subject or defaults.subject) if deliver else "keep",
        add_headers=_merged_headers(defaults.add_headers, rule.add_headers) if deliver else (),
        portal=_portal_choice(rule.portal or defaults.portal) if "portal" in via else None,
    )


def _portal_choice(block: PortalBlock | None) -> PortalChoice:
    if block is None:
        return PortalChoice()
    return PortalChoice(block.access, block.show_sender, block.expiry_days, block.read_receipt)


def _merged_headers(defaults: dict[str, str], rule: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The defaults' headers plus the rule's; the rule's value wins for the same name.

    Compared without case, as header names are: X-Secure in the defaults and
    x-secure in a rule must not both end up in the message.
    """
    merged = {name.lower(): (name, value) for name, value in defaults.items()}
    merged.update({name.lower(): (name, value) for name, value in rule.items()})
    return tuple(merged.values())


def _compile(merged: _Merged, version: str, files: tuple[str, ...]) -> CompiledPolicy:
    defaults = merged.defaults
    rules = []
    uses_consent = False
    for rule in merged.rules:
        tests = compile_conditions(rule.when)
        uses_consent = uses_consent or any(key == "consent" for _, key, _ in _walk(rule.when, ()))
        rules.append(
            CompiledRule(
                id=rule.id,
                message_tests=tuple(t for t in tests if t.scope == "message"),
                recipient_tests=tuple(t for t in tests if t.scope == "recipient"),
                outcome=_outcome(rule, defaults),
                tests=tests,
            )
        )
    return CompiledPolicy(
        version=version,
        files=files,
        category_header=merged.settings.category_header,
        neutral_subject=merged.settings.neutral_subject,
        timezone=merged.settings.timezone,
        can_spam_footer=merged.settings.can_spam_footer,
        defaults=_outcome(defaults, defaults),
        recipient_groups=tuple(_group(n, g) for n, g in merged.recipient_groups.items()),
        sender_groups=tuple(_group(n, g) for n, g in merged.sender_groups.items()),
        category_rules=tuple(
            CompiledCategoryRule(r.id, compile_conditions(r.when), r.category)
            for r in merged.category_rules
        ),
        rules=tuple(rules),
        uses_consent=uses_consent,
        transport=tuple(
            TransportRequirement(
                DomainSet.of(t.domains),
                "pin" if t.pin_sha256 else t.require,
                frozenset(t.pin_sha256),
            )
            for t in merged.transport
        ),
    )
