"""Policy loading and the decision engine.

(a) Property tests: whatever text is fed to the loader, the outcome is a
    compiled policy or a PolicyError whose every problem is located and
    explained, never any other exception.
(b) The error messages admins see, with file:line and key.
(c) The engine's semantics as docs/policy.md states them.
"""

from __future__ import annotations

import email
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.consent import NoConsentRecords
from gateway.inspect.findings import Findings
from gateway.policy.engine import (
    CompiledPolicy,
    Decision,
    PortalChoice,
    categorize,
    decide,
    explain_category,
    explain_recipient,
)
from gateway.policy.evaluate import evaluate, facts_for
from gateway.policy.explain import explanation, explanation_text
from gateway.policy.facts import Envelope, MessageFacts, message_facts
from gateway.policy.loader import PolicyError, load_policy_texts
from gateway.strict_yaml import MAX_DEPTH, YamlError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEXT = (ROOT / "policies" / "default.yaml").read_text(encoding="utf-8")
DEFAULT_LINES = DEFAULT_TEXT.splitlines()
EXAMPLE_TEXTS = [
    p.read_text(encoding="utf-8") for p in sorted(ROOT.glob("policies/examples/*/*.yaml"))
]

# What YAML counts as a line break (and so do editors): not only \n.
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
# Python's own spelling of types, which an admin must never have to read.
_PYTHON_REPR = re.compile(r"typing\.|<class |NoneType|Literal\[|list\[")


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def load(*texts: str | tuple[str, str]) -> CompiledPolicy:
    """Load one or more policy texts; plain strings get names a.yaml, b.yaml, ..."""
    named = [
        t if isinstance(t, tuple) else (f"{'abcdefgh'[i]}.yaml", dedent(t))
        for i, t in enumerate(texts)
    ]
    return load_policy_texts(named)


def problems_of(*texts: str | tuple[str, str]) -> list[YamlError]:
    with pytest.raises(PolicyError) as info:
        load(*texts)
    assert info.value.problems, "a PolicyError must carry its problems"
    return info.value.problems


def only_problem(*texts: str | tuple[str, str]) -> YamlError:
    found = problems_of(*texts)
    assert len(found) == 1, "\n".join(str(p) for p in found)
    return found[0]


def facts(
    *,
    principal: str | None = "ehr",
    sender: str = "results@hospital.example",
    authenticated: bool = True,
    inbound_tls: bool = True,
    size: int = 5_000,
    headers: Sequence[str] = ("from", "to", "subject"),
    category_header: str | None = None,
    findings: Findings | None = None,
    minute_of_day: int = 12 * 60,
    weekday: str = "mon",
) -> MessageFacts:
    return MessageFacts(
        principal=principal,
        sender=sender,
        sender_domain=sender.rpartition("@")[2],
        from_address=sender,
        from_domain=sender.rpartition("@")[2],
        authenticated=authenticated,
        inbound_tls=inbound_tls,
        size=size,
        headers=frozenset(h.lower() for h in headers),
        category_header=category_header,
        findings=findings or Findings(),
        minute_of_day=minute_of_day,
        weekday=weekday,
    )


PHI = Findings(phi=True, types={"ssn": 1})


def decide_all(
    policy: CompiledPolicy,
    message: MessageFacts,
    recipients: Sequence[str],
    consent: Mapping[str, str] | None = None,
) -> list[Decision]:
    category, _ = categorize(policy, message)
    return decide(policy, message, category, consent or {}, recipients)


def rule_for(
    policy: CompiledPolicy,
    message: MessageFacts,
    recipient: str = "dr@partner.example",
    consent: str | None = None,
) -> str | None:
    states = {recipient: consent} if consent else {}
    return decide_all(policy, message, [recipient], states)[0].rule


# --- (a) property tests: never anything but a policy or located problems ---------------


SAMPLE_MESSAGES = (
    facts(),
    facts(findings=PHI, principal=None, authenticated=False, category_header="marketing"),
    facts(
        findings=Findings(phi=True, types={"mrn": 2}, in_subject=True, unscannable=True),
        headers=("subject", "list-unsubscribe"),
        minute_of_day=23 * 60,
        weekday="sun",
    ),
)


def assert_loads_or_explains(texts: list[tuple[str, str]]) -> None:
    """The loader's contract, for any input whatever."""
    try:
        policy = load_policy_texts(texts)
    except PolicyError as exc:
        assert exc.problems
        by_name = dict(texts)
        for problem in exc.problems:
            assert isinstance(problem, YamlError)
            assert problem.message.strip(), repr(problem)
            assert problem.source in by_name
            # All input here is YAML content, so every problem has a line in it.
            last_line = len(_LINE_BREAK.split(by_name[problem.source]))
            assert problem.line is not None, str(problem)
            assert 1 <= problem.line <= last_line, str(problem)
            assert problem.column is None or problem.column >= 1
            shown = str(problem)
            assert not _PYTHON_REPR.search(shown), shown
        return
    assert isinstance(policy, CompiledPolicy)
    # A policy that loads must also decide and explain, for any message.
    recipients = ["dr@partner.example", "patient@home.example"]
    for message in SAMPLE_MESSAGES:
        category, _ = categorize(policy, message)
        decisions = decide(policy, message, category, {recipients[1]: "opted_out"}, recipients)
        assert [d.recipient for d in decisions] == recipients
        for decision in decisions:
            assert decision.action in ("deliver", "reject", "hold")
            traces = explain_recipient(
                policy, message, category, decision.recipient, decision.consent
            )
            matched = [t.rule for t in traces if t.result == "matched"]
            assert matched == ([decision.rule] if decision.rule else [])


def examples(count: int) -> settings:
    # Counts chosen so that the whole file runs in well under 20 s on 2 cores.
    return settings(max_examples=count, deadline=None, suppress_health_check=[HealthCheck.too_slow])


FAST = examples(150)


@FAST
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    assert_loads_or_explains([("random.yaml", text)])


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_as_latin1(data: bytes) -> None:
    # Control characters, NUL, stray high bytes: the YAML reader's own refusals.
    assert_loads_or_explains([("bytes.yaml", data.decode("latin-1"))])


def _fragments() -> list[str]:
    lines = set(DEFAULT_LINES)
    for text in EXAMPLE_TEXTS:
        lines.update(text.splitlines())
    return sorted(line.strip() for line in lines if line.strip())


FRAGMENTS = _fragments()
SCALARS = [
    "yes", "no", "on", "off", "y", "N", "0755", "0x1F", "1:30", "[]", "{}", "~", "''", '"',
    "true", "false", "3.5", "-1", "1e3", ".inf", "[tls, tls]", "[standard, smime, portal]",
    "{at_least: 3}", "{at_least: -1}", "{at_most: 10MB}", '"25:00-01:00"', '"22:00-06:00"',
    "'*.example.org'", "foo@", "a@b.example", "10TB", "null", "[a, [b]]", "{not: {}}",
    "[{}]", "Marketing", "marketing", "reject", "hold", "deliver", "smime", "*alias",
    "&anchor x", "!!str x", "a: b", "- x", "\t", "|\n  text", '"a\\nb"', "é", "x" * 300,
    "{any_of: [{phi: true}]}", "[mon, fry]", "opted_out", "partners", "Bad Name",
]  # fmt: skip


@st.composite
def yamlish(draw: st.DrawFn) -> str:
    """Lines taken from real policies, re-indented and reordered at random."""
    lines = draw(
        st.lists(
            st.tuples(
                st.sampled_from([0, 0, 2, 4, 6, 8, 3]),
                st.sampled_from(FRAGMENTS),
                st.one_of(st.none(), st.sampled_from(SCALARS)),
            ),
            max_size=25,
        )
    )
    out = ["version: 1"] if draw(st.booleans()) else []
    for indent, fragment, scalar in lines:
        if scalar is not None and ":" in fragment:
            fragment = fragment.split(":", 1)[0] + ": " + scalar
        out.append(" " * indent + fragment)
    return "\n".join(out) + "\n"


@FAST
@given(yamlish())
def test_yamlish_text_from_policy_fragments(text: str) -> None:
    assert_loads_or_explains([("fragments.yaml", text)])


@st.composite
def mutated_default(draw: st.DrawFn) -> str:
    """policies/default.yaml with a few lines deleted, doubled, swapped, re-indented,
    or with a value replaced."""
    lines = list(DEFAULT_LINES)
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        operation = draw(st.sampled_from(["delete", "duplicate", "swap", "indent", "scalar"]))
        if operation == "delete":
            del lines[i]
        elif operation == "duplicate":
            lines.insert(i, lines[i])
        elif operation == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif operation == "indent":
            shift = draw(st.sampled_from([-4, -2, -1, 1, 2, 4]))
            stripped = lines[i].lstrip(" ")
            indent = len(lines[i]) - len(stripped)
            lines[i] = " " * max(0, indent + shift) + stripped
        else:
            scalar = draw(st.sampled_from(SCALARS))
            key, colon, _ = lines[i].partition(":")
            lines[i] = f"{key}: {scalar}" if colon else f"{lines[i]} {scalar}"
    return "\n".join(lines) + "\n"


@examples(300)
@given(mutated_default())
def test_mutations_of_the_default_policy(text: str) -> None:
    assert_loads_or_explains([("default.yaml", text)])


@FAST
@given(mutated_default(), mutated_default())
def test_two_mutated_files_merged(first: str, second: str) -> None:
    # Two copies of (nearly) the same policy: duplicate ids, settings and
    # defaults across files must be reported like any other problem.
    assert_loads_or_explains([("10-first.yaml", first), ("20-second.yaml", second)])


def test_the_mutated_policy_is_the_shipped_default() -> None:
    # The mutation tests start from a policy that loads and decides.
    assert_loads_or_explains([("default.yaml", DEFAULT_TEXT)])
    assert len(load(("default.yaml", DEFAULT_TEXT)).rules) >= 4


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000,
        "[" * 3000 + "]" * 3000,
        "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 400)),
        "version: 1\nrules:\n  - id: r\n    when: "
        + "{not: " * 300
        + "{phi: true}"
        + "}" * 300
        + "\n    action: deliver\n",
    ],
    ids=["open-brackets", "closed-brackets", "deep-mapping", "deep-not"],
)
def test_deep_nesting_is_a_located_problem_not_a_crash(text: str) -> None:
    problem = problems_of(("deep.yaml", text))[0]
    assert "nest more than" in problem.message
    assert problem.line is not None


def test_nesting_a_policy_needs_is_fine() -> None:
    # not: inside not: ... well beyond anything real, but under the limit.
    depth = MAX_DEPTH - 6
    when = "{not: " * depth + "{phi: true}" + "}" * depth
    policy = load(f"version: 1\nrules:\n  - id: r\n    when: {when}\n    action: deliver\n")
    # An even number of negations is the plain condition.
    assert rule_for(policy, facts(findings=PHI)) == ("r" if depth % 2 == 0 else None)
    assert rule_for(policy, facts()) == (None if depth % 2 == 0 else "r")


# --- (b) error messages -------------------------------------------------------------------


def test_duplicate_key() -> None:
    problem = only_problem(
        """
        version: 1
        rules:
          - id: first
            action: deliver
            action: reject
        """
    )
    assert (problem.source, problem.line, problem.key) == ("a.yaml", 5, "rules[0].action")
    assert 'duplicate key "action" (first on line 4, again on line 5)' in problem.message


def test_no_as_a_value() -> None:
    problem = only_problem(
        """
        version: 1
        rules:
          - id: first
            when:
              phi: no
            action: deliver
        """
    )
    assert (problem.line, problem.column, problem.key) == (5, 12, "rules[0].when.phi")
    assert "only true and false" in problem.message
    assert '"no"' in problem.hint and "true or false" in problem.hint


def test_yes_in_a_list_points_at_the_item() -> None:
    problem = only_problem(
        """
        version: 1
        rules:
          - id: first
            when:
              recipient_domain: [a.example, yes]
            action: deliver
        """
    )
    assert (problem.line, problem.key) == (5, "rules[0].when.recipient_domain[1]")


def test_leading_zero_number() -> None:
    problem = only_problem(
        """
        version: 1
        rules:
          - id: first
            when:
              phi_count: {at_least: 0755}
            action: deliver
        """
    )
    assert problem.line == 5 and "leading zero" in problem.message


def test_unknown_key_with_did_you_mean() -> None:
    problem = only_problem(
        """
        version: 1
        recipient_groups:
          partners:
            domains: [stlukes.example]
        rules:
          - id: partners
            when:
              recipient_grop: partners
            action: deliver
        """
    )
    assert (problem.line, problem.column) == (8, 7)
    assert problem.key == "rules[0].when.recipient_grop"
    assert problem.message == 'unknown key "recipient_grop"'
    assert problem.hint == 'did you mean "recipient_group"?'


def test_unknown_top_level_key_lists_choices_when_nothing_is_close() -> None:
    problem = only_problem("version: 1\nzzz: 1\n")
    assert problem.key == "zzz" and '"rules"' in problem.hint


def test_wrong_type() -> None:
    problem = only_problem(
        """
        version: 1
        rules:
          - id: first
            when:
              phi: 3
            action: deliver
        """
    )
    assert (problem.line, problem.key) == (5, "rules[0].when.phi")
    assert problem.message == "expected true or false, got 3"


def test_a_list_where_a_section_is_expected() -> None:
    problem = only_problem("version: 1\nsettings: [a, b]\n")
    assert problem.key == "settings" and "section" in problem.message


def test_misspelt_category_is_named_with_a_suggestion() -> None:
    # One message, in plain words: not one per member of "value or list" with
    # Python type names in it.
    problem = only_problem(
        """
        version: 1
        rules:
          - id: first
            when:
              category: marketng
            action: deliver
        """
    )
    assert (problem.line, problem.key) == (5, "rules[0].when.category")
    assert problem.message == "'marketng' is not a category; did you mean 'marketing'?"
    assert "treatment, payment" in problem.hint
    assert not _PYTHON_REPR.search(str(problem))


def test_misspelt_weekday_in_a_list_points_at_the_item() -> None:
    problem = only_problem(
        """
        version: 1
        rules:
          - id: first
            when:
              weekdays: [mon, fry]
            action: deliver
        """
    )
    assert (problem.line, problem.column, problem.key) == (5, 23, "rules[0].when.weekdays[1]")
    assert "did you mean 'fri'" in problem.message


def test_empty_list_of_values_is_refused() -> None:
    # An empty "any of" list would make the rule silently never match.
    problem = only_problem(
        """
        version: 1
        rules:
          - id: first
            when:
              consent: []
            action: deliver
        """
    )
    assert problem.key == "rules[0].when.consent" and "at least 1" in problem.message


def test_bad_rule_id_is_explained_without_a_regex() -> None:
    problem = only_problem(
        """
        version: 1
        rules:
          - id: Send PHI
            action: deliver
        """
    )
    assert (problem.line, problem.key) == (3, "rules[0].id")
    assert "is not a valid name" in problem.message and "^[" not in str(problem)


def test_unknown_recipient_group_points_at_the_reference() -> None:
    problem = only_problem(
        """
        version: 1
        recipient_groups:
          partners:
            domains: [stlukes.example]
        rules:
          - id: first
            action: deliver
          - id: to-partners
            when:
              recipient_group: [partners, partner]
            action: deliver
        """
    )
    assert (problem.line, problem.column) == (10, 35)
    assert problem.key == "rules[1].when.recipient_group[1]"
    assert problem.message == 'no recipient group is named "partner" (defined: partners)'


def test_unknown_sender_group_nested_in_any_of() -> None:
    problem = only_problem(
        """
        version: 1
        rules:
          - id: first
            when:
              any_of:
                - phi: true
                - sender_group: billing
            action: deliver
        """
    )
    assert problem.line == 7 and problem.key == "rules[0].when.any_of[1].sender_group"
    assert "defined: none yet" in problem.message


def test_group_defined_in_another_file_may_be_used() -> None:
    policy = load(
        "version: 1\nrecipient_groups:\n  partners:\n    domains: [stlukes.example]\n",
        "version: 1\nrules:\n  - id: p\n    when: {recipient_group: partners}\n"
        "    action: deliver\n",
    )
    assert rule_for(policy, facts(), "dr@stlukes.example") == "p"


def test_category_rule_using_a_recipient_condition() -> None:
    problem = only_problem(
        """
        version: 1
        categories:
          - id: partner-mail
            when:
              not:
                recipient_domain: stlukes.example
            category: treatment
        """
    )
    assert (problem.line, problem.key) == (6, "categories[0].when.not.recipient_domain")
    assert "a category rule cannot test recipient_domain" in problem.message
    assert "rules:" in problem.hint


def test_category_rule_using_consent() -> None:
    problem = only_problem(
        "version: 1\ncategories:\n  - id: c\n    when: {consent: granted}\n"
        "    category: marketing\n"
    )
    assert problem.line == 4 and "cannot test consent" in problem.message


def test_duplicate_rule_id_across_two_files_names_both() -> None:
    problem = only_problem(
        ("10-base.yaml", "version: 1\nrules:\n  - id: partners\n    action: deliver\n"),
        (
            "20-more.yaml",
            "version: 1\ncategories:\n  - id: other\n    category: treatment\n"
            "rules:\n  - id: partners\n    action: deliver\n",
        ),
    )
    assert (problem.source, problem.line, problem.key) == ("20-more.yaml", 6, "rules[0].id")
    assert problem.message == 'rule id "partners" is already used in 10-base.yaml:3'


def test_category_and_delivery_rule_ids_share_one_namespace() -> None:
    problem = only_problem(
        "version: 1\ncategories:\n  - id: same\n    category: treatment\n"
        "rules:\n  - id: same\n    action: deliver\n"
    )
    assert problem.line == 6 and "already used in a.yaml:3" in problem.message


def test_duplicate_group_across_files() -> None:
    problem = only_problem(
        "version: 1\nsender_groups:\n  ehr:\n    principals: [ehr]\n",
        "version: 1\nsender_groups:\n  ehr:\n    principals: [emr]\n",
    )
    assert (problem.source, problem.line, problem.key) == ("b.yaml", 3, "sender_groups.ehr")
    assert "already defined in a.yaml:3" in problem.message


def test_reject_without_reason() -> None:
    problem = only_problem(
        """
        version: 1
        rules:
          - id: first
            when:
              phi: true
            action: reject
        """
    )
    assert (problem.line, problem.key) == (3, "rules[0]")
    assert problem.message == "a reject action needs a reason"
    assert "reason:" in problem.hint


def test_reject_with_via_is_refused() -> None:
    problem = only_problem(
        "version: 1\nrules:\n  - id: r\n    action: reject\n    reason: Not here\n    via: [tls]\n"
    )
    assert (problem.line, problem.key) == (3, "rules[0]")
    assert "via, subject and add_headers apply to deliver and hold only" in problem.message


def test_reason_no_is_a_boolean_not_text() -> None:
    # The strict reader refuses `reason: No` rather than sending "False" to a client.
    problem = only_problem("version: 1\nrules:\n  - id: r\n    action: reject\n    reason: No\n")
    assert (problem.line, problem.key) == (5, "rules[0].reason")
    assert "not a boolean" in problem.message


def test_deliver_with_reason_is_refused() -> None:
    problem = only_problem(
        "version: 1\nrules:\n  - id: r\n    action: deliver\n    reason: Because\n"
    )
    assert problem.line == 3 and "reason applies to reject and hold only" in problem.message


def test_via_with_a_duplicate_mode() -> None:
    problem = only_problem(
        """
        version: 1
        rules:
          - id: first
            action: deliver
            via: [tls, portal, tls]
        """
    )
    assert (problem.line, problem.key) == (5, "rules[0].via")
    assert problem.message == "via lists a mode twice"


def test_via_with_an_unknown_mode_suggests_one() -> None:
    problem = only_problem("version: 1\nrules:\n  - id: r\n    action: deliver\n    via: [smim]\n")
    assert problem.key == "rules[0].via[0]" and problem.hint == 'did you mean "smime"?'


@pytest.mark.parametrize(
    ("value", "column"),
    [('"25:00-07:00"', 20), ('"8:00-18:00"', 20), ("08:00", 20), ('"08:00 to 18:00"', 20)],
)
def test_invalid_time_of_day(value: str, column: int) -> None:
    problem = only_problem(
        f"version: 1\nrules:\n  - id: r\n    when:\n      time_of_day: {value}\n"
        "    action: deliver\n"
    )
    assert (problem.line, problem.column, problem.key) == (5, column, "rules[0].when.time_of_day")
    # Unquoted 08:00 is caught by the strict reader (base 60), the rest by the schema.
    assert "time" in problem.message


def test_settings_in_two_files() -> None:
    problem = only_problem(
        ("10-a.yaml", "version: 1\nsettings:\n  timezone: UTC\n"),
        ("20-b.yaml", "version: 1\ndescription: more\nsettings:\n  timezone: UTC\n"),
    )
    assert (problem.source, problem.line, problem.key) == ("20-b.yaml", 3, "settings")
    assert problem.message == "settings are already given in 10-a.yaml:2"


def test_defaults_in_two_files() -> None:
    problem = only_problem(
        "version: 1\ndefaults:\n  action: deliver\n",
        "version: 1\ndefaults:\n  action: deliver\n",
    )
    assert problem.source == "b.yaml" and "defaults are already given" in problem.message


def test_problems_of_all_files_are_reported_together_in_order() -> None:
    found = problems_of(
        "version: 1\nrules:\n  - id: r\n    action: reject\n",
        "version: 1\nrules:\n  - id: s\n    when: {phi: maybe}\n    action: deliver\n",
    )
    assert [(p.source, p.line) for p in found] == [("a.yaml", 3), ("b.yaml", 4)]


def test_invalid_timezone_and_size() -> None:
    found = problems_of(
        "version: 1\nsettings:\n  timezone: Mars/Olympus\nrules:\n  - id: r\n"
        "    when: {size: {at_least: 10TB}}\n    action: deliver\n"
    )
    assert [(p.line, p.key) for p in found] == [
        (3, "settings.timezone"),
        (6, "rules[0].when.size.at_least"),
    ]
    # Longer than a file name may be: the same error, not an OSError.
    long_zone = only_problem(f"version: 1\nsettings:\n  timezone: {'x' * 300}\n")
    assert long_zone.key == "settings.timezone" and "is not a time zone" in long_zone.message


def test_header_injection_in_defaults_is_refused() -> None:
    # Defaults' headers end up in delivered messages too: no CR/LF smuggling.
    problem = only_problem(
        'version: 1\ndefaults:\n  add_headers:\n    X-Note: "ok\\r\\nBcc: x@evil.example"\n'
    )
    assert problem.key == "defaults.add_headers" and "one line" in problem.message


def test_same_header_twice_in_one_rule_is_refused() -> None:
    problem = only_problem(
        "version: 1\nrules:\n  - id: r\n    action: deliver\n"
        "    add_headers: {X-Secure: a, x-secure: b}\n"
    )
    assert problem.key == "rules[0].add_headers" and "listed twice" in problem.message


def test_file_that_is_not_a_mapping() -> None:
    problem = only_problem(("list.yaml", "- version: 1\n"))
    assert (problem.source, problem.line) == ("list.yaml", 1)
    assert "key: value" in problem.message


def test_version_must_be_1() -> None:
    problem = only_problem("version: 2\n")
    assert problem.key == "version" and problem.line == 1


# --- (c) engine semantics -----------------------------------------------------------------

RECIPIENTS = """
version: 1
settings:
  neutral_subject: Secure note
defaults:
  action: deliver
  via: [tls, portal]
  subject: neutral_if_phi
  add_headers:
    X-Relay: phigate
    X-Secure: "no"
recipient_groups:
  partners:
    domains: [stlukes.example, "*.county.example"]
    addresses: [lab@independent.example]
rules:
  - id: opted-out
    when:
      consent: opted_out
    action: reject
    reason: Opted out
  - id: partners-phi
    when:
      recipient_group: partners
      phi: true
    action: deliver
    via: [smime, tls]
    add_headers:
      x-secure: "yes"
  - id: any-phi
    when:
      phi: true
    action: deliver
    subject: neutral
  - id: small-plain
    when:
      size: {at_most: 1MB}
    action: deliver
    via: [standard]
    subject: keep
"""


def test_first_match_wins_per_recipient() -> None:
    policy = load(RECIPIENTS)
    # partners-phi and any-phi both hold for a partner; the first decides.
    assert rule_for(policy, facts(findings=PHI), "dr@stlukes.example") == "partners-phi"
    # opted-out comes first and wins over everything below it.
    assert rule_for(policy, facts(findings=PHI), "dr@stlukes.example", "opted_out") == "opted-out"


def test_recipients_of_one_message_get_different_rules() -> None:
    policy = load(RECIPIENTS)
    decisions = decide_all(
        policy,
        facts(findings=PHI),
        ["dr@stlukes.example", "patient@home.example", "lab@independent.example", "x@y.example"],
        {"x@y.example": "opted_out"},
    )
    assert [(d.rule, d.action) for d in decisions] == [
        ("partners-phi", "deliver"),
        ("any-phi", "deliver"),
        ("partners-phi", "deliver"),
        ("opted-out", "reject"),
    ]
    assert decisions[0].via == ("smime", "tls") and decisions[1].via == ("tls", "portal")
    assert decisions[3].reason == "Opted out" and decisions[3].refused
    assert [d.consent for d in decisions] == ["none", "none", "none", "opted_out"]


def test_defaults_decide_when_nothing_matches() -> None:
    policy = load(RECIPIENTS)
    (decision,) = decide_all(policy, facts(size=2_000_000), ["a@b.example"])
    assert decision.rule is None
    assert (decision.action, decision.via) == ("deliver", ("tls", "portal"))
    assert dict(decision.add_headers) == {"X-Relay": "phigate", "X-Secure": "no"}


def test_defaults_with_reject() -> None:
    policy = load(
        "version: 1\ndefaults:\n  action: reject\n  reason: Not allowed\n"
        "rules:\n  - id: phi\n    when: {phi: true}\n    action: deliver\n"
    )
    (nothing,) = decide_all(policy, facts(), ["a@b.example"])
    assert (nothing.action, nothing.reason, nothing.rule, nothing.via) == (
        "reject",
        "Not allowed",
        None,
        (),
    )
    (phi,) = decide_all(policy, facts(findings=PHI), ["a@b.example"])
    # defaults.via is [tls] unless written.
    assert (phi.action, phi.via) == ("deliver", ("tls",))


def test_deliver_rule_inherits_via_and_subject_and_merges_headers() -> None:
    policy = load(RECIPIENTS)
    subject_phi = Findings(phi=True, types={"mrn": 1}, in_subject=True)
    (partner,) = decide_all(policy, facts(findings=subject_phi), ["dr@stlukes.example"])
    # partners-phi gives via but no subject: subject comes from the defaults.
    assert partner.via == ("smime", "tls")
    assert partner.neutral_subject == "Secure note"
    # Its x-secure replaces the defaults' X-Secure (header names ignore case);
    # X-Relay is kept.
    assert sorted((n.lower(), v) for n, v in partner.add_headers) == [
        ("x-relay", "phigate"),
        ("x-secure", "yes"),
    ]
    (other,) = decide_all(policy, facts(findings=PHI), ["patient@home.example"])
    # any-phi gives neither via nor headers.
    assert other.via == ("tls", "portal")
    assert dict(other.add_headers) == {"X-Relay": "phigate", "X-Secure": "no"}


@pytest.mark.parametrize(
    ("subject", "findings", "neutral"),
    [
        ("neutral_if_phi", Findings(phi=True, types={"ssn": 1}, in_subject=False), False),
        ("neutral_if_phi", Findings(phi=True, types={"ssn": 1}, in_subject=True), True),
        # A finding in the subject is what counts, whatever the verdict on the body.
        ("neutral_if_phi", Findings(phi=False, types={"phone": 1}, in_subject=True), True),
        ("neutral_if_phi", Findings(), False),
        ("neutral", Findings(), True),
        ("keep", Findings(phi=True, types={"ssn": 1}, in_subject=True), False),
    ],
)
def test_subject_modes(subject: str, findings: Findings, neutral: bool) -> None:
    policy = load(
        f"version: 1\nsettings: {{neutral_subject: Secure}}\nrules:\n  - id: r\n"
        f"    action: deliver\n    subject: {subject}\n"
    )
    (decision,) = decide_all(policy, facts(findings=findings), ["a@b.example"])
    assert decision.neutral_subject == ("Secure" if neutral else None)


def test_a_reject_never_carries_a_neutral_subject() -> None:
    policy = load(
        "version: 1\ndefaults: {subject: neutral}\nrules:\n  - id: r\n    action: reject\n"
        "    reason: No thanks\n"
    )
    (decision,) = decide_all(policy, facts(), ["a@b.example"])
    assert decision.neutral_subject is None and decision.via == ()


WILDCARDS = """
version: 1
recipient_groups:
  county:
    domains: ["*.county.example"]
sender_groups:
  county-senders:
    domains: ["*.county.example"]
rules:
  - id: by-domain
    when:
      recipient_domain: "*.example.org"
    action: deliver
  - id: by-group
    when:
      recipient_group: county
    action: deliver
  - id: by-sender
    when:
      sender_domain: "*.county.example"
    action: deliver
  - id: by-sender-group
    when:
      sender_group: county-senders
    action: reject
    reason: Group
"""


@pytest.mark.parametrize(
    ("recipient", "rule"),
    [
        ("a@mail.example.org", "by-domain"),
        ("a@a.b.example.org", "by-domain"),
        ("a@MAIL.Example.org", "by-domain"),
        ("a@example.org", None),  # *. means subdomains only
        ("a@badexample.org", None),
        ("a@example.org.evil.example", None),
        ("a@tb.county.example", "by-group"),
        ("a@county.example", None),
    ],
)
def test_wildcard_domains_match_subdomains_only(recipient: str, rule: str | None) -> None:
    policy = load(WILDCARDS)
    assert rule_for(policy, facts(sender="x@other.example"), recipient) == rule


@pytest.mark.parametrize(
    ("sender", "rule"),
    [("x@tb.county.example", "by-sender"), ("x@county.example", None)],
)
def test_wildcard_sender_domains(sender: str, rule: str | None) -> None:
    assert rule_for(load(WILDCARDS), facts(sender=sender), "a@home.example") == rule


def test_sender_group_domain_wildcard() -> None:
    policy = load(
        """
        version: 1
        sender_groups:
          county-senders:
            domains: ["*.county.example"]
        rules:
          - id: by-sender-group
            when:
              sender_group: county-senders
            action: deliver
        """
    )
    assert rule_for(policy, facts(sender="x@tb.county.example")) == "by-sender-group"
    assert rule_for(policy, facts(sender="x@county.example")) is None


COMBINED = """
version: 1
rules:
  - id: combined
    when:
      all_of:
        - any_of:
            - phi: true
            - unscannable: true
        - not:
            recipient_domain: partner.example
            inbound_tls: true
    action: reject
    reason: Combined
"""


@pytest.mark.parametrize(
    ("findings", "recipient", "tls", "matches"),
    [
        (PHI, "a@home.example", True, True),
        (Findings(unscannable=True), "a@home.example", True, True),
        (Findings(), "a@home.example", True, False),  # any_of fails
        # not: holds unless BOTH of its conditions hold.
        (PHI, "a@partner.example", True, False),
        (PHI, "a@partner.example", False, True),
        (PHI, "a@home.example", False, True),
    ],
)
def test_any_of_all_of_not(findings: Findings, recipient: str, tls: bool, matches: bool) -> None:
    policy = load(COMBINED)
    message = facts(findings=findings, inbound_tls=tls)
    assert rule_for(policy, message, recipient) == ("combined" if matches else None)


def test_recipient_condition_inside_not_is_decided_per_recipient() -> None:
    # The whole `all_of` reads a recipient fact, so it must not be cached per message.
    policy = load(COMBINED)
    decisions = decide_all(policy, facts(findings=PHI), ["a@partner.example", "a@home.example"])
    assert [d.rule for d in decisions] == [None, "combined"]
    decisions = decide_all(policy, facts(findings=PHI), ["a@home.example", "a@partner.example"])
    assert [d.rule for d in decisions] == ["combined", None]


@pytest.mark.parametrize(
    ("minute", "matches"),
    [
        (22 * 60, True),
        (23 * 60 + 59, True),
        (0, True),
        (5 * 60 + 59, True),
        (6 * 60, False),  # the end is exclusive
        (12 * 60, False),
        (21 * 60 + 59, False),
    ],
)
def test_time_of_day_wrapping_midnight(minute: int, matches: bool) -> None:
    policy = load(
        'version: 1\nrules:\n  - id: night\n    when: {time_of_day: "22:00-06:00"}\n'
        "    action: deliver\n"
    )
    assert rule_for(policy, facts(minute_of_day=minute)) == ("night" if matches else None)


@pytest.mark.parametrize(
    ("minute", "matches"),
    [(8 * 60 - 1, False), (8 * 60, True), (17 * 60 + 59, True), (18 * 60, False)],
)
def test_time_of_day_within_a_day(minute: int, matches: bool) -> None:
    policy = load(
        'version: 1\nrules:\n  - id: day\n    when: {time_of_day: "08:00 - 18:00"}\n'
        "    action: deliver\n"
    )
    assert rule_for(policy, facts(minute_of_day=minute)) == ("day" if matches else None)


def test_time_and_weekday_are_read_in_the_policy_time_zone() -> None:
    policy = load(
        "version: 1\nsettings: {timezone: America/Chicago}\nrules:\n  - id: office\n"
        '    when: {time_of_day: "08:00-18:00", weekdays: [mon, tue, wed, thu, fri]}\n'
        "    action: deliver\n"
    )
    envelope = Envelope("a@clinic.example", ("b@home.example",), "ehr", True, True)

    def at(now: float) -> str | None:
        message = message_facts(
            envelope, "", frozenset(), None, 100, Findings(), now, policy.timezone
        )
        return rule_for(policy, message, "b@home.example")

    # 2026-01-05 is a Monday. 15:00 UTC is 09:00 in Chicago (CST, UTC-6): office hours.
    monday_1500_utc = 1767625200.0
    assert at(monday_1500_utc) == "office"
    # 02:00 UTC on Tuesday is still Monday 20:00 in Chicago: outside office hours.
    assert at(monday_1500_utc + 11 * 3600) is None
    # Saturday 15:00 UTC: a weekend.
    assert at(monday_1500_utc + 5 * 86400) is None


@pytest.mark.parametrize(
    ("count", "matches"), [(0, False), (1, False), (2, True), (3, True), (4, False)]
)
def test_phi_count_range(count: int, matches: bool) -> None:
    policy = load(
        "version: 1\nrules:\n  - id: few\n    when: {phi_count: {at_least: 2, at_most: 3}}\n"
        "    action: deliver\n"
    )
    # The count is over all types.
    types = {"ssn": count // 2, "mrn": count - count // 2} if count else {}
    message = facts(findings=Findings(phi=count > 0, types=types))
    assert rule_for(policy, message) == ("few" if matches else None)


@pytest.mark.parametrize(
    ("size", "matches"), [(9_999_999, False), (10_000_000, True), (10**9, True)]
)
def test_size_with_a_unit(size: int, matches: bool) -> None:
    policy = load(
        "version: 1\nrules:\n  - id: big\n    when: {size: {at_least: 10MB}}\n    action: deliver\n"
    )
    assert rule_for(policy, facts(size=size)) == ("big" if matches else None)


@pytest.mark.parametrize(
    ("written", "limit"), [("500KB", 500_000), ("500 kb", 500_000), ("2048", 2048), ("1GB", 10**9)]
)
def test_size_units(written: str, limit: int) -> None:
    policy = load(
        f"version: 1\nrules:\n  - id: small\n    when: {{size: {{at_most: {written}}}}}\n"
        "    action: deliver\n"
    )
    assert rule_for(policy, facts(size=limit)) == "small"
    assert rule_for(policy, facts(size=limit + 1)) is None


SENDERS = """
version: 1
sender_groups:
  billing:
    principals: [billing-system]
    addresses: [invoices@clinic.example]
    domains: [billing.example]
rules:
  - id: from-billing
    when:
      sender_group: billing
    action: deliver
  - id: unauthenticated
    when:
      principal: none
    action: hold
    reason: Unauthenticated
"""


@pytest.mark.parametrize(
    ("principal", "sender", "rule"),
    [
        ("billing-system", "anyone@elsewhere.example", "from-billing"),  # by principal
        ("ehr", "invoices@clinic.example", "from-billing"),  # by address
        ("ehr", "x@billing.example", "from-billing"),  # by domain
        ("ehr", "other@clinic.example", None),
        (None, "other@clinic.example", "unauthenticated"),
        (None, "invoices@clinic.example", "from-billing"),
    ],
)
def test_sender_group_by_principal_address_and_domain(
    principal: str | None, sender: str, rule: str | None
) -> None:
    policy = load(SENDERS)
    assert rule_for(policy, facts(principal=principal, sender=sender)) == rule


CONSENT = """
version: 1
categories:
  - id: marked
    when:
      category_header: [Marketing, promo]
    category: marketing
rules:
  - id: marketing-allowed
    when:
      category: marketing
      consent: granted
    action: deliver
  - id: marketing-refused
    when:
      category: marketing
    action: reject
    reason: No authorization
"""


def test_consent_conditions_per_recipient() -> None:
    policy = load(CONSENT)
    assert policy.uses_consent
    message = facts(category_header="marketing")
    assert categorize(policy, message) == ("marketing", "marked")
    decisions = decide_all(
        policy,
        message,
        ["a@x.example", "b@x.example", "c@x.example"],
        {"a@x.example": "granted", "b@x.example": "revoked"},
    )
    assert [(d.rule, d.consent) for d in decisions] == [
        ("marketing-allowed", "granted"),
        ("marketing-refused", "revoked"),
        ("marketing-refused", "none"),  # no record: none
    ]


def test_category_header_values_ignore_case() -> None:
    policy = load(CONSENT)
    # The facts hold the header value lower-cased; the policy wrote "Marketing".
    assert categorize(policy, facts(category_header="promo"))[0] == "marketing"
    assert categorize(policy, facts(category_header="transactional")) == ("unknown", None)
    assert categorize(policy, facts(category_header=None)) == ("unknown", None)


def test_policy_without_consent_rules_needs_no_lookup() -> None:
    assert not load(RECIPIENTS.replace("consent: opted_out", "phi: false")).uses_consent
    # A consent test nested in any_of still counts.
    assert load(
        "version: 1\nrules:\n  - id: r\n    when: {any_of: [{consent: granted}]}\n"
        "    action: deliver\n"
    ).uses_consent


def test_categories_first_match_wins() -> None:
    policy = load(
        """
        version: 1
        categories:
          - id: bulk
            when: {list_unsubscribe: true}
            category: marketing
          - id: billing
            when: {principal: billing}
            category: payment
          - id: everything
            category: operations
        """
    )
    bulk_from_billing = facts(principal="billing", headers=("list-unsubscribe",))
    assert categorize(policy, bulk_from_billing) == ("marketing", "bulk")
    assert categorize(policy, facts(principal="billing")) == ("payment", "billing")
    assert categorize(policy, facts()) == ("operations", "everything")
    traces = explain_category(policy, facts(principal="billing"))
    assert [t.result for t in traces] == ["not matched", "matched", "not reached"]


MESSAGE_FACTS = """
version: 1
rules:
  - id: archive
    when: {attachment_types: [.zip, "image/*"]}
    action: reject
    reason: Archive
  - id: campaign
    when: {header_present: X-Campaign-Id}
    action: reject
    reason: Campaign
  - id: plain-session
    when: {inbound_tls: false, authenticated: false}
    action: reject
    reason: Plain
  - id: ssn
    when: {phi_types: [ssn, mbi], phi_in_attachment: true}
    action: reject
    reason: Ssn
  - id: hl7
    when: {structured_payload: true, phi_in_subject: false}
    action: reject
    reason: Hl7
  - id: weekend
    when: {weekdays: [sat, sun]}
    action: reject
    reason: Weekend
"""


@pytest.mark.parametrize(
    ("message", "rule"),
    [
        (
            facts(findings=Findings(attachment_types=frozenset({"application/zip", ".zip"}))),
            "archive",
        ),
        (facts(findings=Findings(attachment_types=frozenset({"image/png"}))), "archive"),
        (facts(findings=Findings(attachment_types=frozenset({"application/pdf", ".pdf"}))), None),
        (facts(headers=("x-campaign-id", "subject")), "campaign"),
        (facts(inbound_tls=False, authenticated=False), "plain-session"),
        (facts(inbound_tls=False, authenticated=True), None),
        (facts(findings=Findings(types={"ssn": 1}, in_attachment=True)), "ssn"),
        (facts(findings=Findings(types={"ssn": 1}, in_attachment=False)), None),
        (facts(findings=Findings(structured=True)), "hl7"),
        (facts(findings=Findings(structured=True, in_subject=True)), None),
        (facts(weekday="sun"), "weekend"),
    ],
)
def test_message_facts(message: MessageFacts, rule: str | None) -> None:
    assert rule_for(load(MESSAGE_FACTS), message) == rule


def test_recipient_and_sender_addresses() -> None:
    policy = load(
        "version: 1\nrules:\n  - id: r\n    when:\n      recipient: [Privacy@Partner.Example]\n"
        "      sender: billing@clinic.example\n    action: deliver\n"
    )
    # Domains are compared without case (they are normalised); local parts as written.
    assert (
        rule_for(policy, facts(sender="billing@clinic.example"), "Privacy@partner.example") == "r"
    )
    assert rule_for(policy, facts(sender="other@clinic.example"), "Privacy@partner.example") is None
    assert rule_for(policy, facts(sender="billing@clinic.example"), "info@partner.example") is None


def test_hold_decisions_keep_delivery_details() -> None:
    policy = load(
        "version: 1\ndefaults: {via: [portal], subject: neutral}\nrules:\n  - id: held\n"
        "    action: hold\n    reason: Review\n"
    )
    (decision,) = decide_all(policy, facts(), ["a@b.example"])
    assert (decision.action, decision.reason, decision.rule) == ("hold", "Review", "held")
    assert not decision.refused


# --- explanations -------------------------------------------------------------------------


def test_explain_marks_matched_not_matched_and_not_reached() -> None:
    policy = load(RECIPIENTS)
    message = facts(findings=PHI, size=100)
    category, _ = categorize(policy, message)
    traces = explain_recipient(policy, message, category, "patient@home.example", "none")
    assert [(t.rule, t.result) for t in traces] == [
        ("opted-out", "not matched"),
        ("partners-phi", "not matched"),
        ("any-phi", "matched"),
        ("small-plain", "not reached"),
    ]
    opted_out, partners, any_phi, small = traces
    assert [(c.key, c.held, c.actual) for c in opted_out.tests] == [("consent", False, "none")]
    # Every condition of a rule that did not match is shown; the failing one holds=False.
    assert [(c.key, c.held) for c in partners.tests] == [
        ("recipient_group", False),
        ("phi", True),
    ]
    assert [(c.key, c.held) for c in any_phi.tests] == [("phi", True)]
    assert small.tests == ()
    # The decision agrees with the explanation.
    assert decide_all(policy, message, ["patient@home.example"])[0].rule == "any-phi"


def test_explain_when_the_defaults_decide() -> None:
    policy = load(RECIPIENTS)
    traces = explain_recipient(policy, facts(size=5_000_000), "unknown", "a@b.example", "none")
    assert [t.result for t in traces] == ["not matched"] * 4
    assert traces[3].tests[0].key == "size" and traces[3].tests[0].actual == "5000000"


def test_explain_shows_nested_groups() -> None:
    policy = load(COMBINED)
    (trace,) = explain_recipient(policy, facts(), "unknown", "a@home.example", "none")
    assert trace.result == "not matched"
    (all_of,) = trace.tests
    assert all_of.key == "all_of" and not all_of.held
    any_of, negation = all_of.children
    assert any_of.held is False and negation.held is True
    as_dict = trace.as_dict()
    assert as_dict["conditions"][0]["groups"][0]["held"] is False


ALPHABET = ["a@stlukes.example", "b@tb.county.example", "lab@independent.example", "c@home.example"]


@examples(200)
@given(
    phi=st.booleans(),
    in_subject=st.booleans(),
    size=st.integers(0, 3_000_000),
    recipients=st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=4),
    consents=st.dictionaries(st.sampled_from(ALPHABET), st.sampled_from(["granted", "opted_out"])),
)
def test_decide_agrees_with_explain(
    phi: bool,
    in_subject: bool,
    size: int,
    recipients: list[str],
    consents: dict[str, str],
) -> None:
    # decide() caches message conditions across recipients; explain() evaluates
    # every rule afresh. They must never disagree.
    policy = load(RECIPIENTS)
    message = facts(findings=Findings(phi=phi, in_subject=in_subject), size=size)
    decisions = decide_all(policy, message, recipients, consents)
    for decision in decisions:
        traces = explain_recipient(policy, message, "unknown", decision.recipient, decision.consent)
        matched = [t.rule for t in traces if t.result == "matched"]
        assert matched == ([decision.rule] if decision.rule else [])
        # Deciding one recipient alone gives the same answer as within the message.
        alone = decide_all(policy, message, [decision.recipient], consents)[0]
        assert alone == decision


def test_version_depends_on_content_and_file_names() -> None:
    text = "version: 1\n"
    first = load_policy_texts([("dir/a.yaml", text)]).version
    assert first == load_policy_texts([("other/a.yaml", text)]).version  # directory ignored
    assert first != load_policy_texts([("dir/b.yaml", text)]).version
    assert first != load_policy_texts([("dir/a.yaml", text + "# comment\n")]).version
    assert re.fullmatch(r"[0-9a-f]{16}", first)


@pytest.mark.parametrize(
    ("from_header", "category"),
    [
        ("Clinic News <news@clinic.example>", "marketing"),
        ("news@CLINIC.EXAMPLE", "marketing"),
        ('"Billing" <statements@billing.clinic.example>', "payment"),
        ("Dr A <a@clinic.example>", "unknown"),
        ("undisclosed-recipients:;", "unknown"),
    ],
)
def test_from_header_address_and_domain(from_header: str, category: str) -> None:
    # The envelope sender is the same for every case: only From decides.
    policy = load(
        "version: 1\ncategories:\n"
        "  - id: news\n    when: {from_address: news@clinic.example}\n    category: marketing\n"
        "  - id: bills\n    when: {from_domain: billing.clinic.example}\n    category: payment\n"
    )
    message = email.message_from_string(f"From: {from_header}\nSubject: x\n\nbody\n")
    envelope = Envelope("bounces@esp.example", ("pat@home.example",))
    found = facts_for(policy, envelope, message, 100, Findings(), 0.0)
    assert categorize(policy, found)[0] == category


# A fingerprint as `openssl x509 -fingerprint -sha256` prints it, in mixed case.
LAB_PIN = ":".join(["AB", "CD", "EF", "01", "23", "45", "67", "89", "ab", "cd", "ef", "01"] * 2)
LAB_PIN += ":" + ":".join(["23", "45", "67", "89"] * 2)


def test_transport_rules_apply_to_their_domains_first_match_first() -> None:
    policy = load(
        """
        version: 1
        transport:
          - domains: ["*.stlukes.example", stlukes.example]
            require: dane
          - domains: [lab.example]
            pin_sha256: ["PIN"]
        """.replace("PIN", LAB_PIN),
        """
        version: 1
        transport:
          - domains: [lab.example, other.example]
            require: verified
        """,
    )
    assert policy.transport_for("mail.stlukes.example").require == "dane"  # type: ignore[union-attr]
    assert policy.transport_for("stlukes.example").require == "dane"  # type: ignore[union-attr]
    lab = policy.transport_for("lab.example")
    assert lab is not None and lab.require == "pin"
    assert lab.pins == frozenset({LAB_PIN.replace(":", "").lower()})
    assert policy.transport_for("other.example").require == "verified"  # type: ignore[union-attr]
    assert policy.transport_for("elsewhere.example") is None


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("require: dane\n    pin_sha256: ['" + "a" * 64 + "']", "exactly one"),
        ("pin_sha256: [abc]", "not a SHA-256 fingerprint"),
        ("require: maybe", "dane"),
        ("", "exactly one"),
    ],
)
def test_transport_rule_errors_are_located_and_explained(rule: str, says: str) -> None:
    problem = only_problem("version: 1\ntransport:\n  - domains: [lab.example]\n    " + rule + "\n")
    assert problem.line is not None and problem.line >= 3
    assert says in str(problem)


# --- portal: how a portal copy is protected ------------------------------------------


def test_portal_block_on_a_reject_rule_is_refused() -> None:
    problem = only_problem(
        """
        version: 1
        rules:
          - id: r
            action: reject
            reason: Not here
            portal: {access: passphrase}
        """
    )
    assert (problem.line, problem.key) == (3, "rules[0]")
    assert problem.message == (
        "a portal block applies to deliver and hold only: a refused message is never "
        "stored for pickup"
    )
    assert problem.hint == "remove the portal block, or change the action"


def test_portal_block_where_the_rule_via_has_no_portal() -> None:
    problem = only_problem(
        """
        version: 1
        rules:
          - id: smime-only
            action: deliver
            via: [smime, tls]
            portal: {show_sender: true}
        """
    )
    assert (problem.line, problem.column, problem.key) == (6, 5, "rules[0].portal")
    assert problem.message == (
        'rule "smime-only" has a portal block, but its via [smime, tls] does not name portal'
    )
    assert "add portal to via" in problem.hint and "remove the portal block" in problem.hint


def test_portal_block_where_the_inherited_via_has_no_portal_names_the_defaults() -> None:
    problem = only_problem(
        ("10-defaults.yaml", "version: 1\ndefaults:\n  via: [smime, tls]\n"),
        (
            "20-rules.yaml",
            "version: 1\nrules:\n  - id: inherits\n    action: hold\n    reason: Review\n"
            "    portal: {expiry_days: 7}\n",
        ),
    )
    assert (problem.source, problem.line, problem.key) == ("20-rules.yaml", 6, "rules[0].portal")
    assert problem.message == (
        'rule "inherits" has a portal block, but the via it takes from the defaults in '
        "10-defaults.yaml:2, [smime, tls], does not name portal"
    )
    assert problem.hint.startswith("give the rule a via that names portal")


def test_portal_block_with_the_built_in_defaults_via() -> None:
    problem = only_problem("version: 1\nrules:\n  - id: r\n    action: deliver\n    portal: {}\n")
    assert problem.key == "rules[0].portal"
    assert "takes from the built-in defaults, [tls]," in problem.message


def test_a_defaults_portal_block_no_via_uses_is_refused() -> None:
    problem = only_problem(
        """
        version: 1
        defaults:
          via: [tls]
          portal:
            read_receipt: true
        rules:
          - id: refused
            action: reject
            reason: Refused
          - id: tls
            action: deliver
            via: [smime, tls]
        """
    )
    assert (problem.line, problem.key) == (4, "defaults.portal")
    assert problem.message == (
        "the defaults' portal block applies to no decision: neither the defaults' via [tls] "
        "nor any rule's via names portal"
    )


def test_a_defaults_portal_block_for_rules_that_name_portal_is_fine() -> None:
    policy = load(
        """
        version: 1
        defaults:
          via: [tls]
          portal: {show_sender: true}
        rules:
          - id: r
            action: deliver
            via: [tls, portal]
        """
    )
    assert policy.rules[0].outcome.portal == PortalChoice(show_sender=True)
    assert policy.defaults.portal is None  # the defaults' own via has no portal


@pytest.mark.parametrize(
    ("block", "key", "needle"),
    [
        ("{access: pin}", "rules[0].portal.access", 'expected one of "code", "passphrase"'),
        ("{expiry_days: 0}", "rules[0].portal.expiry_days", "at least 1"),
        ("{expiry_days: 3651}", "rules[0].portal.expiry_days", "at most 3650"),
        ("{show_sender: maybe}", "rules[0].portal.show_sender", "true or false"),
        ("{sender: true}", "rules[0].portal.sender", 'unknown key "sender"'),
    ],
)
def test_bad_portal_values_are_located(block: str, key: str, needle: str) -> None:
    problem = only_problem(
        f"version: 1\nrules:\n  - id: r\n    action: deliver\n    via: [portal]\n"
        f"    portal: {block}\n"
    )
    assert (problem.line, problem.key) == (6, key)
    assert needle in f"{problem.message} {problem.hint}"


PORTAL_POLICY = """
version: 1
defaults:
  via: [tls, portal]
  portal: {show_sender: true, expiry_days: 10}
rules:
  - id: passphrase
    when: {recipient_domain: home.example}
    action: deliver
    via: [smime, portal]
    portal: {access: passphrase, read_receipt: true}
  - id: held
    when: {recipient_domain: held.example}
    action: hold
    reason: Review first
  - id: refused
    when: {recipient_domain: nope.example}
    action: reject
    reason: Refused
  - id: tls-only
    when: {recipient_domain: partner.example}
    action: deliver
    via: [tls]
"""


def test_decisions_carry_the_portal_terms_of_their_rule_or_the_defaults() -> None:
    policy = load(PORTAL_POLICY)
    recipients = [
        "pat@home.example",
        "x@held.example",
        "y@nope.example",
        "z@partner.example",
        "w@other.example",
    ]
    own, held, refused, tls_only, defaults = decide_all(policy, facts(findings=PHI), recipients)
    # The rule's block replaces the defaults' block as a whole.
    assert own.portal == PortalChoice(access="passphrase", read_receipt=True)
    from_defaults = PortalChoice(show_sender=True, expiry_days=10)
    assert held.portal == from_defaults
    assert (held.action, held.via) == ("hold", ("tls", "portal"))
    assert refused.portal is None and tls_only.portal is None
    assert (defaults.rule, defaults.portal) == (None, from_defaults)


def test_without_any_portal_block_a_portal_decision_gets_the_built_in_terms() -> None:
    policy = load("version: 1\nrules:\n  - id: r\n    action: deliver\n    via: [portal]\n")
    (decision,) = decide_all(policy, facts(), ["a@b.example"])
    assert decision.portal == PortalChoice("code", False, None, False)


def test_explain_shows_the_portal_terms_where_it_shows_via() -> None:
    policy = load(PORTAL_POLICY)
    envelope = Envelope("a@hospital.example", ("pat@home.example", "z@partner.example"), None)
    message = email.message_from_bytes(b"Subject: x\r\n\r\nhello\r\n")
    evaluation = evaluate(policy, envelope, message, 100, PHI, 0.0, NoConsentRecords())
    portal, tls = explanation(policy, evaluation)["recipients"]
    assert portal["decision"]["portal"] == {
        "access": "passphrase",
        "show_sender": False,
        "expiry_days": None,
        "read_receipt": True,
    }
    assert "portal" not in tls["decision"]
    text = explanation_text(policy, evaluation)
    assert (
        "Decision: deliver via smime then portal; portal copy opened with the sender's "
        "passphrase, kept for the days in the settings' portal.expiry_days, sender not shown, "
        "with read receipt (rule passphrase)"
    ) in text
    assert "Decision: deliver via tls (rule tls-only)" in text
