"""Retention rules: periods, which rule applies and when it is due, the file's located errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from archived import RULES, write_rules
from click.testing import CliRunner

from gateway.archive.records import MESSAGE, ArchiveEntry
from gateway.archive.retention import due, due_at, may_be_due_before, parse_period, rule_for
from gateway.archive.rules_file import RetentionRulesError, load_schedule, parse_schedule
from gateway.cli import main


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def entry(
    received_at: float = 0.0,
    *,
    category: str = "treatment",
    principal: str | None = "ehr1",
    sender: str = "dr@clinic.example",
    recipients: tuple[str, ...] = ("pat@example.org",),
    phi: bool = True,
) -> ArchiveEntry:
    return ArchiveEntry(
        "Q1", MESSAGE, received_at, None, principal, sender, recipients, category, phi, 10, "0" * 64
    )


def test_periods_are_calendar_periods() -> None:
    six_years = parse_period("6y")
    assert six_years is not None
    assert six_years.after(ts("2020-02-29T10:00:00")) == ts("2026-02-28T10:00:00")
    eighteen_months = parse_period("18mo")
    assert eighteen_months is not None
    assert eighteen_months.after(ts("2025-08-31T00:00:00")) == ts("2027-02-28T00:00:00")
    assert eighteen_months.before(ts("2027-02-28T00:00:00")) == ts("2025-08-28T00:00:00")
    ninety_days = parse_period("90d")
    assert ninety_days is not None and ninety_days.after(0.0) == 90 * 86400
    two_weeks = parse_period("2w")
    assert two_weeks is not None and two_weeks.after(0.0) == 14 * 86400
    assert parse_period("forever") is None
    for bad in ("6 years", "0d", "6", "y6", "-1y"):
        with pytest.raises(ValueError, match="is not a period"):
            parse_period(bad)


SCHEDULE_TEXT = """\
version: 1
rules:
  - name: marketing-no-phi
    match: {category: marketing, phi: false}
    keep: 90d
  - name: lab-results
    match:
      recipient_domain: "*.lab.example"
    keep: 10y
  - name: unauthenticated
    match: {principal: none}
    keep: 18mo
  - name: from-billing
    match: {sender_domain: billing.example}
    keep: forever
default:
  keep: 6y
"""


def test_first_matching_rule_applies_else_the_default() -> None:
    schedule = parse_schedule(SCHEDULE_TEXT, "retention.yaml")
    assert rule_for(schedule, entry(category="marketing", phi=False)).name == "marketing-no-phi"
    # The first rule needs both conditions; PHI makes it fall through to the default.
    assert rule_for(schedule, entry(category="marketing", phi=True)).name == "default"
    lab = entry(recipients=("pat@example.org", "inbox@east.lab.example"))
    assert rule_for(schedule, lab).name == "lab-results"
    # Both the lab and the unauthenticated rule match: the first written wins.
    both = entry(principal=None, recipients=("inbox@east.lab.example",))
    assert rule_for(schedule, both).name == "lab-results"
    assert rule_for(schedule, entry(principal=None)).name == "unauthenticated"
    assert rule_for(schedule, entry(sender="a@Billing.Example")).name == "from-billing"
    assert rule_for(schedule, entry()).name == "default"


def test_when_a_message_is_due() -> None:
    schedule = parse_schedule(SCHEDULE_TEXT, "retention.yaml")
    arrived = ts("2019-03-01T12:00:00")
    plain = entry(arrived)
    assert due_at(rule_for(schedule, plain), plain) == ts("2025-03-01T12:00:00")
    kept = entry(arrived, sender="a@billing.example")
    assert due_at(rule_for(schedule, kept), kept) is None
    now = ts("2025-03-01T12:00:00")
    found = due(schedule, [plain, kept, entry(now - 10)], now)
    assert [(rule.name, e.sender) for rule, e in found] == [("default", "dr@clinic.example")]
    # The scan bound lets through everything the shortest rule could make due.
    bound = may_be_due_before(schedule, now)
    assert bound is not None and bound >= now - 90 * 86400


def test_audit_period_defaults_to_six_years() -> None:
    schedule = parse_schedule(RULES, "retention.yaml")
    assert schedule.audit_events is not None and schedule.audit_events.text == "6y"
    assert schedule.warnings() == []


def problems(text: str) -> list[str]:
    with pytest.raises(RetentionRulesError) as caught:
        parse_schedule(text, "retention.yaml")
    return [str(p) for p in caught.value.problems]


def test_errors_name_the_file_line_problem_and_fix() -> None:
    found = problems(
        "version: 1\n"
        "rules:\n"
        "  - name: promo\n"
        "    match: {category: marketting}\n"
        "    keep: 2 years\n"
        "default:\n"
        "  keep: 6y\n"
    )
    assert found == [
        "retention.yaml:4:23: rules[0].match.category: 'marketting' is not a category; did you "
        "mean 'marketing'? Fix: write one of treatment, payment, operations, marketing, "
        "transactional, unknown.",
        "retention.yaml:5:11: rules[0].keep: '2 years' is not a period. Fix: write e.g. 6y, "
        "18mo, 2w, 90d, or forever.",
    ]


def test_cross_checks_are_located_too() -> None:
    found = problems(
        "version: 1\n"
        "audit_events: 1y\n"
        "rules:\n"
        "  - name: lab\n"
        "    match: {phi_types: ssn}\n"
        "    keep: 1y\n"
        "  - name: lab\n"
        "    match: {}\n"
        "    keep: 1y\n"
        "default:\n"
        "  keep: 6y\n"
    )
    assert len(found) == 4
    assert found[0].startswith("retention.yaml:2:15: audit_events: audit events kept 1y is less")
    assert "acknowledge_short_audit_retention: true" in found[0]
    assert found[1].startswith("retention.yaml:5:13: rules[0].match.phi_types: retention rules")
    assert found[2].startswith("retention.yaml:7:11: rules[1].name: rule name 'lab' is used twice")
    assert found[3].startswith("retention.yaml:8:5: rules[1].match: a rule must test something")


def test_missing_default_and_unknown_keys() -> None:
    found = problems("version: 1\nrules: []\nkeep_audit: 6y\n")
    assert any("keep_audit" in p and "retention.yaml:3" in p for p in found)
    assert any("default" in p for p in found)


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(RetentionRulesError, match="cannot read the retention rules file"):
        load_schedule(tmp_path / "missing.yaml")


def test_check_prints_the_rules_and_warns_of_a_short_audit_period(tmp_path: Path) -> None:
    path = write_rules(tmp_path, RULES.replace("version: 1\n", "version: 1\naudit_events: 2y\n"))
    refused = CliRunner().invoke(main, ["retention", "check", str(path)])
    assert refused.exit_code == 2
    assert f"{path}:2:15: audit_events" in refused.output
    path.write_text(
        RULES.replace(
            "version: 1\n",
            "version: 1\naudit_events: 2y\nacknowledge_short_audit_retention: true\n",
        )
    )
    checked = CliRunner().invoke(main, ["retention", "check", str(path)])
    assert checked.exit_code == 0, checked.output
    assert "warning: audit events are kept 2y, less than the 6 years" in checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[0] == f"{path}: OK"
    assert lines[1].split() == ["marketing", "keep", "90d", "category:", "marketing"]
    assert lines[2].split() == ["legal-forever", "keep", "forever", "principal:", "legal"]
    assert lines[3].split() == ["default", "keep", "6y", "every", "message"]
    assert lines[4] == "  audit events kept 2y"


def test_settings_with_an_invalid_rules_file_are_refused(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, RULES.replace("keep: 90d", "keep: 90 days"))
    config = tmp_path / "phigate.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\narchive:\n  retention:\n    rules_file: {rules}\n"
    )
    result = CliRunner().invoke(main, ["config", "check", "-c", str(config)])
    assert result.exit_code == 2
    assert "the retention rules are not valid, so phigate does not start" in result.output
    assert f"{rules}:5:11: rules[0].keep: '90 days' is not a period" in result.output
