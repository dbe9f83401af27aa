"""Admin-written test cases for a policy directory: `phigate policy test DIR`.

Cases live in `DIR/tests/*.yaml`, beside the policy files they test. Each
case gives an envelope, a message (a file, or inline headers and body),
optionally inspection findings and consent states, and the decision the
admin expects. A case runs through `gateway.policy.evaluate`, the very
pipeline the server uses, so a passing case shows what the server will do.

Output names decisions only (action, via, rule, subject kept or neutral,
reason, portal terms, category) and what the admin wrote in the case file; never anything
read from a message.
"""

from __future__ import annotations

import difflib
import email.policy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.consent.states import ConsentState
from gateway.inspect import PHI_TYPES, Findings, inspect_message
from gateway.mail.addresses import AddressError, normalise
from gateway.mail.message import parse
from gateway.policy.engine import CompiledPolicy, Decision, PortalChoice
from gateway.policy.evaluate import evaluate
from gateway.policy.facts import Envelope
from gateway.policy.loader import PolicyError, load_policy
from gateway.policy.model import (
    _HEADER_NAME,
    Access,
    Category,
    Mode,
    _as_list,
    parse_size,
)
from gateway.strict_yaml import (
    KeyPath,
    Mark,
    YamlDocument,
    YamlError,
    describe_value,
    format_path,
)
from gateway.yaml_models import ModelErrors, ModelSchema, read_document, validate_document

__all__ = [
    "CaseError",
    "CaseResult",
    "PolicyCase",
    "check_cases",
    "load_cases",
    "run_cases",
    "run_policy_tests",
]

TESTS_DIR = "tests"
DEFAULT_TIME = "2026-01-05T12:00"  # a Monday, noon: inside any plausible office hours
# The word an expectation uses for "no rule matched, the defaults decided".
DEFAULTS_RULE = "defaults"
_FILE_KIND = "policy test file"


# --- the case file schema -----------------------------------------------------------


class _CaseModel(BaseModel):
    # No populate_by_name: `from` must be written as `from`, not as the field name.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_line(value: str, what: str) -> str:
    if not value.strip() or any(ch in value for ch in "\r\n"):
        raise ValueError(f"{what} must be one line of text")
    return value


class CaseEnvelope(_CaseModel):
    """What the SMTP session established."""

    sender: str = Field(alias="from", description='envelope sender; "" is the null sender')
    to: list[str] = Field(min_length=1, description="envelope recipients, one or more")
    principal: str | None = Field(
        default=None, description="authenticated principal; omitted: unauthenticated"
    )
    tls: bool = Field(default=True, description="whether the client used TLS")

    _to_list = field_validator("to", mode="before")(_as_list)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return "" if value == "" else _mailbox(value)

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        addresses = [_mailbox(v) for v in value]
        for address in addresses:
            if addresses.count(address) > 1:
                raise ValueError(f"{address!r} is listed twice in to")
        return addresses

    @field_validator("principal")
    @classmethod
    def _principal(cls, value: str | None) -> str | None:
        return None if value is None else _one_line(value, "a principal name")


class CaseFindings(_CaseModel):
    """Replaces the inspection result entirely; what is left out is false or empty."""

    phi: bool = False
    types: dict[str, int] = Field(default_factory=dict, description="count per PHI type")
    in_subject: bool = False
    in_attachment: bool = False
    structured: bool = False
    unscannable: bool = False
    attachment_types: list[str] = Field(
        default_factory=list, description="content types (application/pdf) and extensions (.pdf)"
    )

    @field_validator("types")
    @classmethod
    def _types(cls, value: dict[str, int]) -> dict[str, int]:
        for name, count in value.items():
            if name not in PHI_TYPES:
                raise ValueError(f"{name!r} is not a PHI type")
            if count < 1:
                raise ValueError(f"the count of {name} must be at least 1, got {count}")
        return value

    @field_validator("attachment_types")
    @classmethod
    def _attachment_types(cls, value: list[str]) -> list[str]:
        for item in value:
            if not (item.startswith(".") or "/" in item):
                raise ValueError(f"{item!r} is neither a content type nor an extension")
        return [item.lower() for item in value]

    def as_findings(self) -> Findings:
        return Findings(
            phi=self.phi,
            types=dict(self.types),
            in_subject=self.in_subject,
            in_attachment=self.in_attachment,
            structured=self.structured,
            unscannable=self.unscannable,
            attachment_types=frozenset(self.attachment_types),
        )


class ExpectedPortal(_CaseModel):
    """How the recipient's portal copy is protected; only what is written is checked."""

    access: Access | None = None
    show_sender: bool | None = None
    expiry_days: int | None = Field(default=None, ge=1, le=3650)
    read_receipt: bool | None = None


class ExpectedRecipient(_CaseModel):
    """The decision expected for one recipient; only what is written is checked."""

    action: Literal["deliver", "reject", "hold"]
    via: list[Mode] | None = Field(default=None, min_length=1, description="modes, in order")
    rule: str | None = Field(
        default=None, description='id of the deciding rule; "defaults" when none matched'
    )
    subject: Literal["neutral", "keep"] | None = Field(
        default=None, description="neutral: the subject is replaced; keep: it is not"
    )
    reason: str | None = None
    portal: ExpectedPortal | None = Field(
        default=None, description="how the portal copy is protected (via names portal)"
    )

    @model_validator(mode="after")
    def _fits_action(self) -> ExpectedRecipient:
        if self.action == "deliver" and self.reason is not None:
            raise ValueError("a deliver decision has no reason, so this can never pass")
        if self.action == "reject" and (
            self.via is not None or self.subject is not None or self.portal is not None
        ):
            raise ValueError(
                "via, subject and portal describe a delivery; a reject decision has none of "
                "them, so this can never pass"
            )
        return self


class Expectation(_CaseModel):
    category: Category | None = Field(default=None, description="the message category")
    recipients: dict[str, ExpectedRecipient] = Field(
        default_factory=dict, description="per recipient (each one of envelope.to)"
    )

    @model_validator(mode="after")
    def _something(self) -> Expectation:
        if self.category is None and not self.recipients:
            raise ValueError("expect checks nothing")
        return self


class CaseSpec(_CaseModel):
    """One test case."""

    name: str = Field(max_length=200, description="shown in the test report")
    envelope: CaseEnvelope
    time: str = Field(
        default=DEFAULT_TIME, description="local time in the policy's timezone, YYYY-MM-DDTHH:MM"
    )
    message: str | None = Field(default=None, description="message file, relative to this file")
    headers: dict[str, str] | None = Field(default=None, description="inline message headers")
    body: str | None = Field(default=None, description="inline text/plain body")
    size: int | str | None = Field(
        default=None,
        description="message size for size rules (10MB, 500KB); omitted: the message's own",
    )
    findings: CaseFindings | None = Field(
        default=None, description="replaces inspection; omitted: the message is inspected"
    )
    consent: dict[str, ConsentState] = Field(
        default_factory=dict, description='per recipient; others are "none"'
    )
    expect: Expectation

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _one_line(value, "a case name")

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        _local_time(value)
        return value

    @field_validator("size")
    @classmethod
    def _size(cls, value: int | str | None) -> int | None:
        return None if value is None else parse_size(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, text in (value or {}).items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a header name")
            _one_line(text, f"the value of header {name}")
        return value


class CaseFile(_CaseModel):
    """One file of test cases."""

    version: Literal[1] = Field(description="schema version; always 1 for now")
    cases: list[CaseSpec] = Field(min_length=1)


CASES_SCHEMA = ModelSchema(
    CaseFile,
    value_hints=(
        ("is not an email address", "write e.g. dr@partner.example"),
        ("is listed twice", "list each recipient once"),
        ("is not a PHI type", "write one of " + ", ".join(PHI_TYPES)),
        ("the count of", "write a count of 1 or more, or leave the type out"),
        ("neither a content type nor an extension", "write e.g. application/pdf, image/* or .zip"),
        ("is not a header name", "write e.g. X-Phigate-Category"),
        ("is not a size", "write e.g. 25MB, 500KB or 1048576"),
        ("must be one line", "keep it to one line of text"),
        ("is not a local time", f'write e.g. "{DEFAULT_TIME}" (in quotes, without an offset)'),
        ("has no reason", "remove reason, or expect action: reject or hold"),
        ("describe a delivery", "remove via, subject and portal, or expect action: deliver"),
        ("checks nothing", "add category: or recipients: under expect"),
    ),
    fallback_hint="see docs/policy.md, section Testing a policy",
)


def _mailbox(value: str) -> str:
    try:
        return normalise(value)
    except AddressError as exc:
        raise ValueError(f"{value!r} is not an email address: {exc}") from None


def _local_time(value: str) -> datetime:
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a local time") from None
    if local.tzinfo is not None:
        raise ValueError(f"{value!r} is not a local time: it has an offset")
    return local


# --- loaded cases -------------------------------------------------------------------


@dataclass(frozen=True)
class RuleReference:
    """Where a case names a rule, to check that the policy has it."""

    rule: str
    source: str
    mark: Mark
    key: str


@dataclass(frozen=True)
class PolicyCase:
    name: str
    source: str
    line: int
    envelope: Envelope
    local_time: datetime  # naive: read in the policy's timezone when run
    content: bytes
    size: int  # what size rules see: the case's size, else the message's length
    findings: Findings | None  # None: inspect the message
    consent: Mapping[str, str]
    expected_category: str | None
    # recipient -> key -> value as rendered in the diff, for the keys written only
    expected: Mapping[str, Mapping[str, str]]
    rules: tuple[RuleReference, ...]

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


class CaseError(ModelErrors):
    """Every problem found in a directory's test case files."""


def case_files(directory: Path) -> list[Path]:
    tests = directory / TESTS_DIR
    if not tests.is_dir():
        return []
    return sorted(p for p in tests.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_cases(directory: Path) -> list[PolicyCase]:
    """Every case in `directory`/tests/*.yaml; raise CaseError listing every problem."""
    cases: list[PolicyCase] = []
    problems: list[YamlError] = []
    names: dict[str, str] = {}  # case name -> file:line where first given
    for path in case_files(directory):
        try:
            loaded = _load_file(path)
        except YamlError as exc:
            problems.append(exc)
            continue
        except ModelErrors as exc:
            problems.extend(exc.problems)
            continue
        for case, doc, index in loaded:
            first = names.setdefault(case.name, case.where)
            if first != case.where:
                problems.append(
                    doc.error(
                        ("cases", index, "name"),
                        f'the case name "{case.name}" is already used in {first}',
                        "give every case its own name, so that a failure names one case",
                    )
                )
        cases.extend(case for case, _, _ in loaded)
    if problems:
        raise CaseError(problems)
    return cases


def _load_file(path: Path) -> list[tuple[PolicyCase, YamlDocument, int]]:
    doc = read_document(path, _FILE_KIND)
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error(
            (),
            f"a policy test file holds key: value sections, but this one holds "
            f"{describe_value(data)}",
            'start with "version: 1", then "cases:" with one item per case',
        )
    spec = validate_document(CASES_SCHEMA, doc, data)
    problems: list[YamlError] = []
    loaded = []
    for index, case in enumerate(spec.cases):
        try:
            loaded.append((_compile_case(path, doc, index, case), doc, index))
        except ModelErrors as exc:
            problems.extend(exc.problems)
    if problems:
        raise ModelErrors(problems)
    return loaded


def _written_keys(doc: YamlDocument, path: KeyPath) -> list[str]:
    """The keys of the section at `path` exactly as written (before normalising).

    Only called after validation, so every section on the way is a mapping or
    a list; a section left out has no keys.
    """
    section: Any = doc.data
    for part in path:
        section = section[part] if isinstance(part, int) else (section.get(part) or {})
    return list(section)


def _recipient_keys(
    doc: YamlDocument, path: KeyPath, envelope: CaseEnvelope, problems: list[YamlError]
) -> dict[str, str]:
    """Written key -> normalised address, for keys that name one of envelope.to once."""
    found: dict[str, str] = {}
    for written in _written_keys(doc, path):
        try:
            address = _mailbox(written)
        except ValueError as exc:
            problems.append(
                doc.error((*path, written), str(exc), "write e.g. dr@partner.example", at_key=True)
            )
            continue
        if address not in envelope.to:
            problems.append(
                doc.error(
                    (*path, written),
                    f"{written} is not a recipient of this case (envelope.to: "
                    f"{', '.join(envelope.to)})",
                    "add it to envelope.to, or correct the address",
                    at_key=True,
                )
            )
            continue
        if address in found.values():
            problems.append(
                doc.error(
                    (*path, written),
                    f"{written} names the same recipient as another key here",
                    "keep one entry per recipient",
                    at_key=True,
                )
            )
            continue
        found[written] = address
    return found


def _compile_case(path: Path, doc: YamlDocument, index: int, case: CaseSpec) -> PolicyCase:
    base: KeyPath = ("cases", index)
    problems: list[YamlError] = []
    content = b""
    if case.message is not None and (case.headers is not None or case.body is not None):
        problems.append(
            doc.error(
                (*base, "message"),
                "a case gives either a message file or inline headers and body, not both",
                "remove message:, or remove headers: and body:",
                at_key=True,
            )
        )
    elif case.message is not None:
        file = path.parent / case.message
        try:
            content = file.read_bytes()
        except OSError as exc:
            problems.append(
                doc.error(
                    (*base, "message"),
                    f"cannot read the message file {file}: {exc.strerror or exc}",
                    f"write a path relative to {path.parent}, e.g. messages/lab.eml",
                )
            )
    else:
        content = _inline_message(case.headers or {}, case.body or "")

    consent_keys = _recipient_keys(doc, (*base, "consent"), case.envelope, problems)
    consent = {consent_keys[k]: v for k, v in case.consent.items() if k in consent_keys}

    expected: dict[str, dict[str, str]] = {}
    rules = []
    recipients_path: KeyPath = (*base, "expect", "recipients")
    keys = _recipient_keys(doc, recipients_path, case.envelope, problems)
    for key, want in case.expect.recipients.items():
        if key not in keys:
            continue
        shown = _fields(want.action, want.via, want.rule, want.subject, want.reason)
        expected[keys[key]] = {k: v for k, v in shown.items() if getattr(want, k) is not None}
        if want.portal is not None:
            written = want.portal.model_dump(exclude_none=True)
            expected[keys[key]].update(_portal_fields(PortalChoice(**written), written))
        if want.rule is not None and want.rule != DEFAULTS_RULE:
            rule_path = (*recipients_path, key, "rule")
            rules.append(
                RuleReference(want.rule, doc.source, doc.mark(rule_path), format_path(rule_path))
            )
    if problems:
        raise ModelErrors(problems)
    return PolicyCase(
        name=case.name,
        source=doc.source,
        line=doc.key_mark(base).line,
        envelope=Envelope(
            sender=case.envelope.sender,
            recipients=tuple(case.envelope.to),
            principal=case.envelope.principal,
            authenticated=case.envelope.principal is not None,
            inbound_tls=case.envelope.tls,
        ),
        local_time=_local_time(case.time),
        content=content,
        size=len(content) if case.size is None else int(case.size),
        findings=None if case.findings is None else case.findings.as_findings(),
        consent=consent,
        expected_category=case.expect.category,
        expected=expected,
        rules=tuple(rules),
    )


def _inline_message(headers: Mapping[str, str], body: str) -> bytes:
    """A simple text/plain message; the case's headers win over the MIME defaults."""
    message = EmailMessage(policy=email.policy.SMTP)
    message.set_content(body)
    for name, value in headers.items():
        del message[name]
        message[name] = value
    return message.as_bytes()


# --- running ------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseResult:
    name: str
    where: str  # file:line of the case
    passed: bool
    diff: tuple[str, ...]  # unified diff, expected -> actual; empty when passed


@dataclass(frozen=True)
class _CaseConsent:
    """Consent as the case file states it, whatever the purpose."""

    states_by_recipient: Mapping[str, str]

    def states(self, recipients: Sequence[str], purpose: str) -> Mapping[str, str]:
        return {r: self.states_by_recipient[r] for r in recipients if r in self.states_by_recipient}


def _fields(
    action: str,
    via: Sequence[str] | None,
    rule: str | None,
    subject: str | None,
    reason: str | None,
) -> dict[str, str]:
    """A decision's keys as diff lines show them; expected and actual share this."""
    return {
        "action": action,
        "via": "[" + ", ".join(via or ()) + "]",
        "rule": rule or DEFAULTS_RULE,
        "subject": subject or "keep",
        # Quoted: a reason is free text, and quotes show where it ends.
        "reason": '"' + reason + '"' if reason is not None else "none",
    }


def _portal_fields(choice: PortalChoice | None, keys: Iterable[str]) -> dict[str, str]:
    """portal.KEY lines of a diff; expected and actual share this."""
    terms = {} if choice is None else choice.as_dict()
    return {f"portal.{key}": "none" if choice is None else _yaml(terms[key]) for key in keys}


def _yaml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "settings" if value is None else str(value)  # an expiry the settings decide


def _actual_fields(decision: Decision) -> dict[str, str]:
    return {
        **_fields(
            decision.action,
            decision.via,
            decision.rule,
            "neutral" if decision.neutral_subject is not None else "keep",
            decision.reason,
        ),
        **_portal_fields(decision.portal, PortalChoice().as_dict()),
    }


def _render(category: str | None, recipients: Mapping[str, Mapping[str, str]]) -> list[str]:
    lines = [] if category is None else [f"category: {category}"]
    if recipients:
        lines.append("recipients:")
        for address in sorted(recipients):
            lines.append(f"  {address}:")
            fields = recipients[address]
            lines.extend(f"    {key}: {fields[key]}" for key in sorted(fields))
    return lines


def check_cases(policy: CompiledPolicy, cases: Sequence[PolicyCase]) -> list[YamlError]:
    """Problems only the policy reveals: an expected rule id the policy does not have."""
    known = [rule.id for rule in policy.rules]
    problems = []
    for case in cases:
        for ref in case.rules:
            if ref.rule not in known:
                problems.append(
                    YamlError(
                        ref.source,
                        ref.mark.line,
                        ref.mark.column,
                        f'the policy has no delivery rule "{ref.rule}" '
                        f"(its rules: {', '.join(known) or 'none'})",
                        f'correct the id, or write "{DEFAULTS_RULE}" for "no rule matched"',
                        ref.key,
                    )
                )
    return problems


def run_case(policy: CompiledPolicy, case: PolicyCase) -> CaseResult:
    message = parse(case.content).message
    findings = case.findings if case.findings is not None else inspect_message(message)
    now = case.local_time.replace(tzinfo=ZoneInfo(policy.timezone)).timestamp()
    evaluation = evaluate(
        policy, case.envelope, message, case.size, findings, now, _CaseConsent(case.consent)
    )
    decisions = {d.recipient: _actual_fields(d) for d in evaluation.decisions}
    actual = {
        address: {key: decisions[address][key] for key in wanted}
        for address, wanted in case.expected.items()
    }
    category = None if case.expected_category is None else evaluation.category
    want = _render(case.expected_category, case.expected)
    got = _render(category, actual)
    if want == got:
        return CaseResult(case.name, case.where, True, ())
    diff = difflib.unified_diff(
        want, got, "expected", "actual", lineterm="", n=max(len(want), len(got))
    )
    return CaseResult(case.name, case.where, False, tuple(diff))


def run_cases(policy: CompiledPolicy, cases: Sequence[PolicyCase]) -> list[CaseResult]:
    return [run_case(policy, case) for case in cases]


def run_policy_tests(directory: Path, out: Callable[[str], None]) -> int:
    """Check the policy in `directory` against its tests/; the process exit code.

    0: every case passed (or there are none); 1: a case failed; 2: the
    policy or a case file has problems, each printed on its own line.
    """
    problems: list[YamlError] = []
    policy = None
    try:
        policy = load_policy(directory)
    except PolicyError as exc:
        problems.extend(exc.problems)
    cases: list[PolicyCase] = []
    try:
        cases = load_cases(directory)
    except CaseError as exc:
        problems.extend(exc.problems)
    if policy is not None:
        problems.extend(check_cases(policy, cases))
    if problems or policy is None:
        for problem in problems:
            out(str(problem))
        out(f"{len(problems)} problem(s) in the policy or its test cases; no case was run")
        return 2
    if not cases:
        out(
            f"no test cases: {directory / TESTS_DIR} holds no *.yaml files. "
            "Add cases there to check what the policy decides (see docs/policy.md)."
        )
        return 0
    failed = 0
    for result in run_cases(policy, cases):
        if result.passed:
            out(f"PASS {result.name}")
            continue
        failed += 1
        out(f"FAIL {result.name} ({result.where})")
        for line in result.diff:
            out(f"  {line}")
    out(f"{len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0
