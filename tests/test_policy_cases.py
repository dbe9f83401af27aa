"""`phigate policy test`: admin-written cases for a policy, and the shipped policies' own cases."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.policy.cases import CaseError, load_cases, run_policy_tests

POLICIES = Path(__file__).resolve().parent.parent / "policies"
EXAMPLES = sorted(p for p in (POLICIES / "examples").iterdir() if p.is_dir())


def run(directory: Path) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = run_policy_tests(directory, lines.append)
    return code, lines


def policy_dir(tmp_path: Path, cases: str, policy: str | None = None) -> Path:
    """A policy directory with the shipped default policy (or `policy`) and one case file."""
    (tmp_path / "tests").mkdir()
    text = policy if policy is not None else (POLICIES / "default.yaml").read_text()
    (tmp_path / "policy.yaml").write_text(text)
    (tmp_path / "tests" / "cases.yaml").write_text(textwrap.dedent(cases).lstrip("\n"))
    return tmp_path


# --- the shipped policies pass their own cases --------------------------------------


def test_there_are_examples() -> None:
    assert {p.name for p in EXAMPLES} >= {"hospital", "clinic", "marketing-crm"}


@pytest.mark.parametrize("directory", [POLICIES, *EXAMPLES], ids=lambda p: p.name)
def test_shipped_policy_passes_its_cases(directory: Path) -> None:
    code, lines = run(directory)
    output = "\n".join(lines)
    assert code == 0, output
    assert not [line for line in lines if line.startswith("FAIL")], output
    passed = [line for line in lines if line.startswith("PASS ")]
    assert len(passed) >= 5, output  # several cases really ran
    assert lines[-1] == f"{len(passed)} passed, 0 failed"


def test_default_cases_use_real_message_files() -> None:
    cases = load_cases(POLICIES)
    from_files = [c for c in cases if c.content.startswith(b"From: ")]
    assert len(from_files) >= 2
    assert all(c.findings is None for c in from_files)  # inspected for real


# --- a failing case ------------------------------------------------------------------

FAILING = """
version: 1
cases:
  - name: passes
    envelope: {from: a@hospital.example, to: [b@partner.example]}
    body: "nothing sensitive"
    expect:
      recipients:
        b@partner.example: {action: deliver, via: [standard]}
  - name: plain mail wrongly expected to be refused
    envelope: {from: a@hospital.example, to: [b@partner.example]}
    headers: {Subject: Canary subject line}
    body: "canary body text"
    expect:
      recipients:
        b@partner.example:
          action: reject
          reason: "Not allowed"
"""


def test_a_failing_case_exits_1_with_a_diff_of_the_decision(tmp_path: Path) -> None:
    code, lines = run(policy_dir(tmp_path, FAILING))
    output = "\n".join(lines)
    assert code == 1, output
    assert "PASS passes" in lines
    where = tmp_path / "tests" / "cases.yaml"
    assert f"FAIL plain mail wrongly expected to be refused ({where}:9)" in lines
    assert "  -    action: reject" in lines
    assert "  +    action: deliver" in lines
    assert '  -    reason: "Not allowed"' in lines
    assert "  +    reason: none" in lines
    assert lines[-1] == "1 passed, 1 failed"
    # Only what the case file says about decisions, nothing of the message.
    assert "canary" not in output.lower()


def test_the_diff_shows_only_the_keys_the_case_wrote(tmp_path: Path) -> None:
    cases = """
    version: 1
    cases:
      - name: rule only
        envelope: {from: a@hospital.example, to: [b@partner.example]}
        expect:
          category: marketing
          recipients:
            b@partner.example: {action: deliver, rule: phi-verified-tls-or-portal}
    """
    code, lines = run(policy_dir(tmp_path, cases))
    assert code == 1
    diff = [line[2:] for line in lines if line.startswith("  ")]
    assert "-category: marketing" in diff and "+category: unknown" in diff
    assert "-    rule: phi-verified-tls-or-portal" in diff
    assert "+    rule: no-phi-standard-delivery" in diff
    assert not [line for line in diff if "via" in line or "subject" in line]


def test_portal_terms_are_checked_key_by_key(tmp_path: Path) -> None:
    cases = """
    version: 1
    cases:
      - name: portal terms
        envelope: {from: a@hospital.example, to: [b@partner.example, c@partner.example]}
        findings: {phi: true, types: {ssn: 1}}
        expect:
          recipients:
            b@partner.example:
              action: deliver
              portal: {access: code, expiry_days: 14}
            c@partner.example:
              action: deliver
              portal: {show_sender: false}
    """
    code, lines = run(policy_dir(tmp_path, cases))
    assert code == 1, lines
    diff = [line[2:] for line in lines if line.startswith("  ")]
    # The shipped default policy's portal decisions take the built-in terms.
    assert "-    portal.expiry_days: 14" in diff
    assert "+    portal.expiry_days: settings" in diff
    assert "     portal.access: code" in diff
    assert "     portal.show_sender: false" in diff  # c passes; b never wrote show_sender
    assert not [line for line in diff if "read_receipt" in line]


def test_a_portal_expectation_where_no_portal_is_decided_shows_none(tmp_path: Path) -> None:
    cases = """
    version: 1
    cases:
      - name: standard mail has no portal copy
        envelope: {from: a@hospital.example, to: [b@partner.example]}
        body: "nothing sensitive"
        expect:
          recipients:
            b@partner.example: {action: deliver, portal: {access: code}}
    """
    code, lines = run(policy_dir(tmp_path, cases))
    assert code == 1
    assert "  -    portal.access: code" in lines and "  +    portal.access: none" in lines


# --- case file errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "line", "message"),
    [
        (
            """
            version: 1
            cases:
              - name: typo
                envelope: {from: a@hospital.example, to: [b@partner.example]}
                body: hi
                expcet:
                  category: unknown
            """,
            6,
            'unknown key "expcet"',
        ),
        (
            """
            version: 1
            cases:
              - name: stranger
                envelope: {from: a@hospital.example, to: [b@partner.example]}
                body: hi
                expect:
                  recipients:
                    b@partner.example: {action: deliver}
                    c@partner.example: {action: deliver}
            """,
            9,
            "c@partner.example is not a recipient of this case",
        ),
        (
            """
            version: 1
            cases:
              - name: both
                envelope: {from: a@hospital.example, to: [b@partner.example]}
                message: messages/lab.eml
                body: hi
                expect:
                  category: unknown
            """,
            5,
            "either a message file or inline headers and body",
        ),
        (
            """
            version: 1
            cases:
              - name: no such rule
                envelope: {from: a@hospital.example, to: [b@partner.example]}
                expect:
                  recipients:
                    b@partner.example: {action: deliver, rule: no-phi-standrad-delivery}
            """,
            7,
            'the policy has no delivery rule "no-phi-standrad-delivery"',
        ),
        (
            """
            version: 1
            cases:
              - name: portal on a reject
                envelope: {from: a@hospital.example, to: [b@partner.example]}
                expect:
                  recipients:
                    b@partner.example: {action: reject, portal: {access: code}}
            """,
            7,
            "via, subject and portal describe a delivery",
        ),
    ],
    ids=[
        "unknown-key",
        "recipient-not-in-envelope",
        "message-and-body",
        "unknown-rule",
        "portal-on-reject",
    ],
)
def test_case_file_errors_exit_2_naming_file_and_line(
    tmp_path: Path, case: str, line: int, message: str
) -> None:
    code, lines = run(policy_dir(tmp_path, case))
    assert code == 2, lines
    found = [out for out in lines if message in out]
    assert len(found) == 1, lines
    problem = found[0]
    assert problem.startswith(f"{tmp_path / 'tests' / 'cases.yaml'}:{line}:"), problem
    assert "Fix: " in problem, problem
    assert not [out for out in lines if out.startswith(("PASS", "FAIL"))]


def test_load_cases_collects_every_problem_of_every_file(tmp_path: Path) -> None:
    directory = policy_dir(
        tmp_path,
        """
        version: 1
        cases:
          - name: one
            envelope: {from: not-an-address, to: [b@partner.example]}
            findings: {types: {sssn: 1}}
            expect: {category: unknown}
        """,
    )
    (directory / "tests" / "more.yaml").write_text("version: 1\ncases: []\n")
    with pytest.raises(CaseError) as info:
        load_cases(directory)
    text = str(info.value)
    assert "cases.yaml:4:" in text and "is not an email address" in text
    assert "cases.yaml:5:" in text and "'sssn' is not a PHI type" in text
    assert "more.yaml:2:" in text and "needs at least 1 item" in text


def test_a_broken_policy_exits_2(tmp_path: Path) -> None:
    cases = """
    version: 1
    cases:
      - name: any
        envelope: {from: a@hospital.example, to: [b@partner.example]}
        expect: {category: unknown}
    """
    code, lines = run(policy_dir(tmp_path, cases, policy="version: 1\nrules:\n  - id: x\n"))
    assert code == 2
    assert lines[0].startswith(f"{tmp_path / 'policy.yaml'}:3:"), lines


def test_no_cases_is_a_note_and_exit_0(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text((POLICIES / "default.yaml").read_text())
    code, lines = run(tmp_path)
    assert code == 0
    assert len(lines) == 1 and "no test cases" in lines[0] and str(tmp_path / "tests") in lines[0]


# --- inspection: real unless the case overrides it ---------------------------------------

INSPECTED = """
version: 1
cases:
  - name: inspected
    envelope: {from: a@hospital.example, to: [b@partner.example]}
    headers: {Subject: Results}
    body: "{body}"
    {findings}
    expect:
      recipients:
        b@partner.example:
          action: deliver
          via: [tls, portal]
          rule: phi-verified-tls-or-portal
"""


@pytest.mark.parametrize(
    ("body", "findings", "expected_code"),
    [
        ("Patient SSN 123-45-6789", "", 0),  # the stand-in detector finds the SSN
        ("Patient doing well", "", 1),  # nothing to find: standard delivery
        ("Patient SSN 123-45-6789", "findings: {phi: false}", 1),  # findings replace inspection
        ("Patient doing well", "findings: {phi: true, types: {ssn: 1}}", 0),
    ],
    ids=["ssn-found", "nothing-found", "override-hides", "override-adds"],
)
def test_inline_body_is_inspected_unless_findings_are_given(
    tmp_path: Path, body: str, findings: str, expected_code: int
) -> None:
    cases = INSPECTED.replace("{body}", body).replace("{findings}", findings)
    code, lines = run(policy_dir(tmp_path, cases))
    assert code == expected_code, lines
    if expected_code == 1:
        assert "  +    rule: no-phi-standard-delivery" in lines


def test_time_and_size_reach_the_policy(tmp_path: Path) -> None:
    policy = """
    version: 1
    settings: {timezone: America/New_York}
    rules:
      - id: night
        when: {time_of_day: "22:00-06:00"}
        action: hold
        reason: Night
      - id: big
        when: {size: {at_least: 10MB}}
        action: hold
        reason: Big
      - id: rest
        action: deliver
    """
    cases = """
    version: 1
    cases:
      - name: local night in New York
        envelope: {from: a@hospital.example, to: [b@partner.example]}
        time: "2026-01-05T23:30"
        expect: {recipients: {b@partner.example: {action: hold, rule: night}}}
      - name: noon by default
        envelope: {from: a@hospital.example, to: [b@partner.example]}
        expect: {recipients: {b@partner.example: {action: deliver, rule: rest}}}
      - name: size override
        envelope: {from: a@hospital.example, to: [b@partner.example]}
        size: 12MB
        expect: {recipients: {b@partner.example: {action: hold, rule: big}}}
    """
    code, lines = run(policy_dir(tmp_path, cases, policy=textwrap.dedent(policy)))
    assert code == 0, lines
