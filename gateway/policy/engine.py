"""The decision engine: compiled rules, evaluated per recipient, with explanations.

Semantics (docs/policy.md): the category rules are tried in order and the
first that matches names the message's category (none: `unknown`). Then, for
each recipient, the delivery rules are tried in order and the **first rule
whose conditions all hold decides** that recipient's outcome; when none
holds, `defaults` decides. A deliver rule that leaves `via` or `subject` out
takes them from `defaults`; its `add_headers` are added to the defaults'.
A decision whose `via` names portal carries the rule's `portal` block, else
the defaults', else the built-in one (PortalChoice()).

Conditions are compiled once, at load, into small closures. Those that only
read message facts are evaluated at most once per message and shared by all
recipients; only recipient conditions run per recipient.

Pure: no I/O, no clock, no randomness. The same inputs give the same
decision and the same explanation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal

from gateway.policy.facts import MessageFacts, domain_of
from gateway.policy.model import Conditions, CountRange, SizeRange

Scope = Literal["message", "recipient"]


class Context:
    """Everything a condition can read while deciding for one recipient."""

    __slots__ = (
        "category",
        "consent",
        "message",
        "recipient",
        "recipient_domain",
        "recipient_groups",
        "sender_groups",
    )

    def __init__(
        self,
        message: MessageFacts,
        sender_groups: frozenset[str],
        category: str,
        recipient: str = "",
        recipient_groups: frozenset[str] = frozenset(),
        consent: str = "none",
    ) -> None:
        self.message = message
        self.sender_groups = sender_groups
        self.category = category
        self.recipient = recipient
        self.recipient_domain = domain_of(recipient)
        self.recipient_groups = recipient_groups
        self.consent = consent


@dataclass(frozen=True)
class Test:
    """One compiled condition, e.g. recipient_group: [partners]."""

    key: str
    scope: Scope
    check: Callable[[Context], bool]
    wanted: str  # the condition as written, for explanations
    actual: Callable[[Context], str]  # the fact's value, for explanations
    children: tuple[Test, ...] = ()


@dataclass(frozen=True)
class DomainSet:
    """Domains written as example.org (exact) or *.example.org (any subdomain)."""

    exact: frozenset[str]
    suffixes: tuple[str, ...]

    @classmethod
    def of(cls, patterns: Iterable[str]) -> DomainSet:
        patterns = list(patterns)
        return cls(
            frozenset(p for p in patterns if not p.startswith("*.")),
            tuple(p[1:] for p in patterns if p.startswith("*.")),
        )

    def __contains__(self, domain: object) -> bool:
        return isinstance(domain, str) and (
            domain in self.exact or (bool(self.suffixes) and domain.endswith(self.suffixes))
        )


@dataclass(frozen=True)
class Group:
    """A compiled recipient or sender group."""

    name: str
    domains: DomainSet
    addresses: frozenset[str]
    principals: frozenset[str] = frozenset()

    def has_address(self, address: str) -> bool:
        return address in self.addresses or domain_of(address) in self.domains


@dataclass(frozen=True)
class TransportRequirement:
    """A compiled `transport` rule: what TLS a recipient domain demands."""

    domains: DomainSet
    require: str  # "dane", "verified" or "pin"
    pins: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PortalChoice:
    """How a portal copy is protected: the policy's `portal` block, defaults filled in."""

    access: str = "code"  # code: a one-time code mailed to the recipient | passphrase
    show_sender: bool = False  # the notice names the sender's address
    expiry_days: int | None = None  # None: the settings' portal.expiry_days
    read_receipt: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "access": self.access,
            "show_sender": self.show_sender,
            "expiry_days": self.expiry_days,
            "read_receipt": self.read_receipt,
        }

    def text(self) -> str:
        """In words, for `phigate policy explain` and `policy check`."""
        access = {"code": "a one-time code", "passphrase": "the sender's passphrase"}
        days = (
            "for the days in the settings' portal.expiry_days"
            if self.expiry_days is None
            else f"for {self.expiry_days} day{'s' if self.expiry_days != 1 else ''}"
        )
        return (
            f"portal copy opened with {access[self.access]}, kept {days}, "
            f"sender {'shown' if self.show_sender else 'not shown'}, "
            f"{'with' if self.read_receipt else 'no'} read receipt"
        )


@dataclass(frozen=True)
class Outcome:
    action: str  # deliver | reject | hold
    via: tuple[str, ...]
    reason: str | None
    subject: str  # keep | neutral_if_phi | neutral
    add_headers: tuple[tuple[str, str], ...]
    portal: PortalChoice | None = None  # set exactly when via names portal


@dataclass(frozen=True)
class CompiledRule:
    id: str
    message_tests: tuple[Test, ...]
    recipient_tests: tuple[Test, ...]
    outcome: Outcome
    tests: tuple[Test, ...] = field(default=())  # in the order written, for explanations
    # The tests above folded into one callable each (None: nothing to test), so
    # that deciding costs one call per rule rather than a loop over tuples.
    message_check: Callable[[Context], bool] | None = field(init=False, repr=False, compare=False)
    recipient_check: Callable[[Context], bool] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "message_check", _all_hold(self.message_tests))
        object.__setattr__(self, "recipient_check", _all_hold(self.recipient_tests))


def _all_hold(tests: tuple[Test, ...]) -> Callable[[Context], bool] | None:
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0].check
    checks = tuple(t.check for t in tests)

    def check(context: Context) -> bool:
        for one in checks:  # noqa: SIM110  (a loop beats all() over a generator here)
            if not one(context):
                return False
        return True

    return check


@dataclass(frozen=True)
class CompiledCategoryRule:
    id: str
    tests: tuple[Test, ...]
    category: str


@dataclass(frozen=True)
class Decision:
    """What happens to one recipient, and why."""

    recipient: str
    action: str
    via: tuple[str, ...]
    reason: str | None
    neutral_subject: str | None  # the subject to deliver with, None: keep it
    add_headers: tuple[tuple[str, str], ...]
    rule: str | None  # None: the defaults decided
    consent: str
    portal: PortalChoice | None = None  # how a portal copy is protected, when via names portal

    @property
    def refused(self) -> bool:
        return self.action == "reject"


@dataclass(frozen=True)
class CompiledPolicy:
    version: str  # hash of the loaded files
    files: tuple[str, ...]
    category_header: str
    neutral_subject: str
    timezone: str
    defaults: Outcome
    recipient_groups: tuple[Group, ...]
    sender_groups: tuple[Group, ...]
    category_rules: tuple[CompiledCategoryRule, ...]
    rules: tuple[CompiledRule, ...]
    # Whether any rule reads the consent fact; if not, nobody needs to look it up.
    uses_consent: bool
    transport: tuple[TransportRequirement, ...] = ()
    can_spam_footer: str | None = None  # postal address for marketing footers

    def transport_for(self, domain: str) -> TransportRequirement | None:
        return next((t for t in self.transport if domain in t.domains), None)

    def recipient_groups_of(self, address: str) -> frozenset[str]:
        domain = domain_of(address)  # once, not once per group
        return frozenset(
            g.name for g in self.recipient_groups if address in g.addresses or domain in g.domains
        )

    def sender_groups_of(self, facts: MessageFacts) -> frozenset[str]:
        return frozenset(
            g.name
            for g in self.sender_groups
            if g.has_address(facts.sender)
            or (facts.principal is not None and facts.principal in g.principals)
        )


# --- compiling conditions -----------------------------------------------------------


def _show(values: Iterable[Any]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def _any_of(
    key: str, scope: Scope, wanted: list[str], fact: Callable[[Context], str | None]
) -> Test:
    choices = frozenset(wanted)
    return Test(
        key,
        scope,
        lambda c: fact(c) in choices,
        f"any of {_show(wanted)}",
        lambda c: str(fact(c)) if fact(c) is not None else "none",
    )


def _overlaps(
    key: str, scope: Scope, wanted: list[str], fact: Callable[[Context], frozenset[str]]
) -> Test:
    choices = frozenset(wanted)
    return Test(
        key,
        scope,
        lambda c: not choices.isdisjoint(fact(c)),
        f"any of {_show(wanted)}",
        lambda c: _show(sorted(fact(c))),
    )


def _flag(key: str, wanted: bool, fact: Callable[[Context], bool]) -> Test:
    return Test(
        key,
        "message",
        lambda c: fact(c) is wanted,
        "true" if wanted else "false",
        lambda c: "true" if fact(c) else "false",
    )


def _range(key: str, bounds: CountRange | SizeRange, fact: Callable[[Context], int]) -> Test:
    low = bounds.at_least if bounds.at_least is not None else 0
    high = bounds.at_most
    assert isinstance(low, int) and (high is None or isinstance(high, int))
    words = []
    if bounds.at_least is not None:
        words.append(f"at least {low}")
    if high is not None:
        words.append(f"at most {high}")
    if high is None:
        check: Callable[[Context], bool] = lambda c: fact(c) >= low  # noqa: E731
    else:
        check = lambda c: low <= fact(c) <= high  # noqa: E731
    return Test(key, "message", check, " and ".join(words), lambda c: str(fact(c)))


def _time_of_day(spec: str) -> Test:
    start_text, end_text = spec.split("-")
    start = int(start_text[:2]) * 60 + int(start_text[3:])
    end = int(end_text[:2]) * 60 + int(end_text[3:])
    if start <= end:
        check: Callable[[Context], bool] = lambda c: start <= c.message.minute_of_day < end  # noqa: E731
    else:  # wraps midnight
        check = lambda c: c.message.minute_of_day >= start or c.message.minute_of_day < end  # noqa: E731
    return Test(
        "time_of_day",
        "message",
        check,
        f"between {spec}",
        lambda c: f"{c.message.minute_of_day // 60:02d}:{c.message.minute_of_day % 60:02d}",
    )


def _attachment_types(wanted: list[str]) -> Test:
    exact = frozenset(w for w in wanted if not w.endswith("/*"))
    families = tuple(w[:-1] for w in wanted if w.endswith("/*"))

    def check(c: Context) -> bool:
        found = c.message.findings.attachment_types
        if not exact.isdisjoint(found):
            return True
        return bool(families) and any(t.startswith(families) for t in found)

    return Test(
        "attachment_types",
        "message",
        check,
        f"any of {_show(wanted)}",
        lambda c: _show(sorted(c.message.findings.attachment_types)),
    )


def _domains(key: str, scope: Scope, wanted: list[str], fact: Callable[[Context], str]) -> Test:
    domains = DomainSet.of(wanted)
    return Test(key, scope, lambda c: fact(c) in domains, f"any of {_show(wanted)}", fact)


def _combined(key: str, children: tuple[Test, ...], mode: str) -> Test:
    scope: Scope = "recipient" if any(t.scope == "recipient" for t in children) else "message"
    checks = tuple(t.check for t in children)
    # Plain loops rather than any()/all() over generators: this is the hot path.
    if mode == "any":

        def check(c: Context) -> bool:
            for one in checks:  # noqa: SIM110
                if one(c):
                    return True
            return False

        wanted = "at least one group holds"
    else:

        def every(c: Context) -> bool:
            for one in checks:  # noqa: SIM110
                if not one(c):
                    return False
            return True

        if mode == "all":
            check = every
            wanted = "every group holds"
        else:
            check = lambda c: not every(c)  # noqa: E731
            wanted = "the group does not hold"
    return Test(key, scope, check, wanted, lambda c: "", children)


def compile_conditions(conditions: Conditions | None) -> tuple[Test, ...]:
    """Tests in the order the fields are declared; all must hold."""
    if conditions is None:
        return ()
    tests: list[Test] = []
    for key in Conditions.model_fields:
        value = getattr(conditions, key)
        if value is None:
            continue
        tests.append(_compile_one(key, value))
    return tuple(tests)


def _compile_one(key: str, value: Any) -> Test:
    # Facts are read with operator.attrgetter where they are plain attributes:
    # it runs in C, where a lambda would add a Python call to every condition.
    m: Scope = "message"
    r: Scope = "recipient"
    if key == "principal":
        return _any_of(key, m, value, lambda c: c.message.principal or "none")
    if key == "sender":
        return _any_of(key, m, value, attrgetter("message.sender"))
    if key == "sender_domain":
        return _domains(key, m, value, attrgetter("message.sender_domain"))
    if key == "from_address":
        return _any_of(key, m, value, attrgetter("message.from_address"))
    if key == "from_domain":
        return _domains(key, m, value, attrgetter("message.from_domain"))
    if key == "sender_group":
        return _overlaps(key, m, value, attrgetter("sender_groups"))
    if key == "recipient":
        return _any_of(key, r, value, attrgetter("recipient"))
    if key == "recipient_domain":
        return _domains(key, r, value, attrgetter("recipient_domain"))
    if key == "recipient_group":
        return _overlaps(key, r, value, attrgetter("recipient_groups"))
    if key == "category":
        return _any_of(key, m, value, attrgetter("category"))
    if key == "category_header":
        return _any_of(key, m, [v.lower() for v in value], attrgetter("message.category_header"))
    if key == "header_present":
        return _overlaps(key, m, value, attrgetter("message.headers"))
    if key == "list_unsubscribe":
        return _flag(key, value, lambda c: "list-unsubscribe" in c.message.headers)
    if key == "phi":
        return _flag(key, value, attrgetter("message.findings.phi"))
    if key == "phi_types":
        return _overlaps(key, m, value, lambda c: frozenset(c.message.findings.types))
    if key == "phi_count":
        return _range(key, value, attrgetter("message.findings.count"))
    if key == "phi_in_subject":
        return _flag(key, value, attrgetter("message.findings.in_subject"))
    if key == "phi_in_attachment":
        return _flag(key, value, attrgetter("message.findings.in_attachment"))
    if key == "structured_payload":
        return _flag(key, value, attrgetter("message.findings.structured"))
    if key == "unscannable":
        return _flag(key, value, attrgetter("message.findings.unscannable"))
    if key == "consent":
        return _any_of(key, r, value, attrgetter("consent"))
    if key == "attachment_types":
        return _attachment_types(value)
    if key == "size":
        return _range(key, value, attrgetter("message.size"))
    if key == "inbound_tls":
        return _flag(key, value, attrgetter("message.inbound_tls"))
    if key == "authenticated":
        return _flag(key, value, attrgetter("message.authenticated"))
    if key == "time_of_day":
        return _time_of_day(value)
    if key == "weekdays":
        return _any_of(key, m, value, attrgetter("message.weekday"))
    if key in ("any_of", "all_of"):
        children = tuple(
            _combined(f"{key}[{i}]", compile_conditions(g), "all") for i, g in enumerate(value)
        )
        return _combined(key, children, "any" if key == "any_of" else "all")
    if key == "not_":
        return _combined("not", compile_conditions(value), "not")
    raise AssertionError(f"condition {key} has no compiler")


# --- evaluating ---------------------------------------------------------------------


def _holds(tests: tuple[Test, ...], context: Context) -> bool:
    # A plain loop: about twice as fast as all() over a generator on this hot path.
    for test in tests:  # noqa: SIM110
        if not test.check(context):
            return False
    return True


def categorize(policy: CompiledPolicy, facts: MessageFacts) -> tuple[str, str | None]:
    """(category, id of the category rule that assigned it; None: no rule matched)."""
    context = Context(facts, policy.sender_groups_of(facts), "unknown")
    for rule in policy.category_rules:
        if _holds(rule.tests, context):
            return rule.category, rule.id
    return "unknown", None


def _decision(
    policy: CompiledPolicy,
    facts: MessageFacts,
    recipient: str,
    consent: str,
    outcome: Outcome,
    rule: str | None,
) -> Decision:
    neutral = (outcome.subject == "neutral") or (
        outcome.subject == "neutral_if_phi" and facts.findings.in_subject
    )
    return Decision(
        recipient=recipient,
        action=outcome.action,
        via=outcome.via,
        reason=outcome.reason,
        neutral_subject=policy.neutral_subject if neutral and outcome.action != "reject" else None,
        add_headers=outcome.add_headers,
        rule=rule,
        consent=consent,
        portal=outcome.portal,
    )


def decide(
    policy: CompiledPolicy,
    facts: MessageFacts,
    category: str,
    consent: Mapping[str, str],
    recipients: Sequence[str],
) -> list[Decision]:
    """One decision per recipient; `consent` maps a recipient to its state ("none" if absent)."""
    sender_groups = policy.sender_groups_of(facts)
    shared = Context(facts, sender_groups, category)
    # Per rule: None = message conditions not evaluated yet; then True/False.
    message_holds: list[bool | None] = [None] * len(policy.rules)
    decisions = []
    for recipient in recipients:
        state = consent.get(recipient, "none")
        context = Context(
            facts, sender_groups, category, recipient, policy.recipient_groups_of(recipient), state
        )
        for index, rule in enumerate(policy.rules):
            holds = message_holds[index]
            if holds is None:
                check = rule.message_check
                holds = message_holds[index] = check is None or check(shared)
            if holds and (rule.recipient_check is None or rule.recipient_check(context)):
                decisions.append(_decision(policy, facts, recipient, state, rule.outcome, rule.id))
                break
        else:
            decisions.append(_decision(policy, facts, recipient, state, policy.defaults, None))
    return decisions


# --- explaining -----------------------------------------------------------------------


@dataclass(frozen=True)
class TestTrace:
    key: str
    wanted: str
    actual: str
    held: bool
    children: tuple[TestTrace, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"condition": self.key, "wanted": self.wanted, "held": self.held}
        if self.children:
            out["groups"] = [child.as_dict() for child in self.children]
        else:
            out["actual"] = self.actual
        return out


@dataclass(frozen=True)
class RuleTrace:
    rule: str
    result: str  # matched | not matched | not reached
    tests: tuple[TestTrace, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "result": self.result,
            "conditions": [t.as_dict() for t in self.tests],
        }


def _trace(test: Test, context: Context) -> TestTrace:
    return TestTrace(
        test.key,
        test.wanted,
        test.actual(context),
        test.check(context),
        tuple(_trace(child, context) for child in test.children),
    )


def _trace_rules(
    rules: Iterable[tuple[str, tuple[Test, ...]]], context: Context
) -> tuple[list[RuleTrace], str | None]:
    traces = []
    winner = None
    for rule_id, tests in rules:
        if winner is not None:
            traces.append(RuleTrace(rule_id, "not reached", ()))
            continue
        traced = tuple(_trace(test, context) for test in tests)
        held = all(t.held for t in traced)
        traces.append(RuleTrace(rule_id, "matched" if held else "not matched", traced))
        if held:
            winner = rule_id
    return traces, winner


def explain_category(policy: CompiledPolicy, facts: MessageFacts) -> list[RuleTrace]:
    context = Context(facts, policy.sender_groups_of(facts), "unknown")
    traces, _ = _trace_rules(((r.id, r.tests) for r in policy.category_rules), context)
    return traces


def explain_recipient(
    policy: CompiledPolicy, facts: MessageFacts, category: str, recipient: str, consent: str
) -> list[RuleTrace]:
    """Every delivery rule considered for `recipient`, in order, with why it (did not) hold."""
    context = Context(
        facts,
        policy.sender_groups_of(facts),
        category,
        recipient,
        policy.recipient_groups_of(recipient),
        consent,
    )
    traces, _ = _trace_rules(((r.id, r.tests) for r in policy.rules), context)
    return traces
