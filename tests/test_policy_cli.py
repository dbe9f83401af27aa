"""The policy commands as an admin uses them: check, schema, explain, test, reload."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from harness import run_without_settings

REPO = Path(__file__).resolve().parent.parent
SHIPPED = [REPO / "policies", *sorted((REPO / "policies" / "examples").iterdir())]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return run_without_settings(*args)


@pytest.fixture(scope="module")
def schema() -> dict[str, object]:
    result = run("policy", "schema")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize("directory", SHIPPED, ids=lambda p: p.name)
def test_shipped_policies_validate_against_the_published_schema(
    directory: Path, schema: dict[str, object]
) -> None:
    files = sorted(directory.glob("*.yaml"))
    assert files
    for path in files:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    assert run("policy", "check", str(directory)).returncode == 0


def test_schema_refuses_what_the_loader_refuses(schema: dict[str, object]) -> None:
    for bad in (
        {"version": 1, "rules": [{"id": "a", "action": "deliver", "whenn": {}}]},
        {"version": 2},
        {"version": 1, "rules": [{"id": "a", "action": "send"}]},
        {"version": 1, "rules": [{"id": "a", "action": "deliver", "via": ["fax"]}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_check_reports_every_problem_with_its_place(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "version: 1\nrules:\n  - id: one\n    action: deliver\n    wen:\n      phi: true\n"
    )
    (tmp_path / "b.yaml").write_text("version: 1\nsettings:\n  timezone: Mars/Olympus\n")
    result = run("policy", "check", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path / 'a.yaml'}:5:5: rules[0].wen: unknown key" in result.stderr
    assert 'did you mean "when"?' in result.stderr
    assert f"{tmp_path / 'b.yaml'}:3:13: settings.timezone:" in result.stderr
    assert "America/New_York" in result.stderr


def test_check_summarises_as_json() -> None:
    result = run("policy", "check", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [r["rule"] for r in summary["rules"]] == [
        "marketing-opted-out",
        "marketing-needs-authorization",
        "phi-verified-tls-or-portal",
        "no-phi-standard-delivery",
    ]
    assert summary["categories"][-1] == {"rule": "has-list-unsubscribe", "category": "marketing"}
    assert len(summary["version"]) == 16


def test_check_shows_the_portal_terms_of_each_rule() -> None:
    hospital = str(REPO / "policies" / "examples" / "hospital")
    text = run("policy", "check", hospital)
    assert text.returncode == 0, text.stderr
    assert (
        "  phi-elsewhere-portal -> deliver via portal; subject neutral; portal copy opened with "
        "a one-time code, kept for 14 days, sender shown, no read receipt\n"
    ) in text.stdout
    assert "  billing-to-payers -> deliver via tls; subject neutral\n" in text.stdout
    summary = json.loads(run("policy", "check", hospital, "--json").stdout)
    rules = {r["rule"]: r for r in summary["rules"]}
    assert rules["phi-elsewhere-portal"]["portal"] == {
        "access": "code",
        "show_sender": True,
        "expiry_days": 14,
        "read_receipt": False,
    }
    assert "portal" not in rules["billing-to-payers"]


def test_explain_shows_findings_rules_and_decision_without_content(tmp_path: Path) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(
        b"From: crm@clinic.example\r\nSubject: CANARY-4471 SSN 123-45-6789\r\n"
        b"List-Unsubscribe: <mailto:u@clinic.example>\r\n\r\nCANARY-BODY-4471\r\n"
    )
    args = ["--from", "crm@clinic.example", "--to", "pat@home.example", "--principal", "crm"]
    result = run("policy", "explain", str(eml), *args, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["findings"]["types"] == {"ssn": 1}
    assert report["findings"]["in_subject"] is True
    assert report["category"] == {
        "category": "marketing",
        "rule": "has-list-unsubscribe",
        "rules": report["category"]["rules"],
    }
    (recipient,) = report["recipients"]
    assert recipient["decision"]["action"] == "reject"
    assert recipient["decision"]["rule"] == "marketing-needs-authorization"
    results = [r["result"] for r in recipient["rules"]]
    assert results == ["not matched", "matched", "not reached", "not reached"]
    consent = recipient["rules"][0]["conditions"][1]
    assert consent == {
        "condition": "consent",
        "wanted": "any of [opted_out]",
        "held": False,
        "actual": "none",
    }
    text = run("policy", "explain", str(eml), *args)
    for output in (result.stdout, text.stdout, text.stderr):
        assert "CANARY" not in output and "123-45-6789" not in output
    assert "2. marketing-needs-authorization: MATCHED" in text.stdout


def test_explain_refuses_a_bad_address(tmp_path: Path) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    result = run("policy", "explain", str(eml), "--from", "a@b.example", "--to", "not an address")
    assert result.returncode == 2
    assert "--to dr@partner.example" in result.stderr


def test_policy_test_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "version: 1\nrules:\n  - id: all-standard\n    action: deliver\n    via: [standard]\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.yaml").write_text(
        "version: 1\ncases:\n  - name: expects tls\n    envelope:\n      from: a@b.example\n"
        "      to: [c@d.example]\n    body: hello\n    expect:\n      recipients:\n"
        "        c@d.example:\n          action: deliver\n          via: [tls]\n"
    )
    result = run("policy", "test", str(tmp_path))
    assert result.returncode == 1
    assert "FAIL expects tls" in result.stdout
    assert "-" in result.stdout and "tls" in result.stdout and "standard" in result.stdout


def test_reload_without_a_running_server_says_so(tmp_path: Path) -> None:
    result = run("policy", "reload", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "no running phigate found" in result.stderr


def test_explain_names_the_transport_rule_of_the_recipient_domain(tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "p.yaml").write_text(
        "version: 1\ntransport:\n  - domains: [lab.example]\n    require: dane\n"
    )
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"From: a@clinic.example\r\nSubject: results\r\n\r\nhello\r\n")
    args = ["--from", "a@clinic.example", "--to", "dr@lab.example", "--to", "x@other.example"]
    result = run("policy", "explain", str(eml), *args, "--dir", str(policy), "--json")
    assert result.returncode == 0, result.stderr
    lab, other = json.loads(result.stdout)["recipients"]
    assert lab["transport"] == "DANE-authenticated TLS only"
    assert other["transport"] is None
    text = run("policy", "explain", str(eml), *args, "--dir", str(policy)).stdout
    assert text.count("Transport: DANE-authenticated TLS only") == 1
