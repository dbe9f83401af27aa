"""The server's intake, `phigate policy explain` and `phigate policy test` decide alike.

All three run the one evaluation pipeline (`gateway.policy.evaluate`). The
same messages go to a running server over SMTP (its decisions read back from
the audit trail), through `policy explain`, and through `policy test` with
the server's decisions written as the expected ones; each must agree.
`explain` has no consent records, so it is compared where the registry has
none; `policy test` takes consent from the case, so it is compared on every
message, marketing with consent included.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import yaml
from harness import Phigate

from gateway.policy.loader import shipped_policy_dir

SENDER = "news@clinic.example.org"
GRANTED = "granted@home.example"
NO_RECORD = "nobody@home.example"
SSN_BODY = "Patient SSN 123-45-6789, results attached."


@dataclass(frozen=True)
class Case:
    name: str
    headers: dict[str, str]
    body: str
    recipients: tuple[str, ...]

    def content(self) -> bytes:
        lines = [f"From: {SENDER}", *(f"{k}: {v}" for k, v in self.headers.items())]
        return ("\r\n".join([*lines, "", self.body, ""])).encode()


CASES = (
    Case(
        "PHI goes over verified TLS or the portal", {"Subject": "Results"}, SSN_BODY, (NO_RECORD,)
    ),
    Case("nothing sensitive goes the standard way", {"Subject": "Hello"}, "See you.", (NO_RECORD,)),
    Case(
        "marketing: consent decides per recipient",
        {"Subject": "Flu shots", "X-Phigate-Category": "marketing"},
        "Book now.",
        (GRANTED, NO_RECORD),
    ),
    Case(
        "marketing for a sub-purpose the sender names",
        {
            "Subject": "Flu shots",
            "X-Phigate-Category": "marketing",
            "X-Phigate-Purpose": "flu-clinic",
        },
        "Book now.",
        (GRANTED, NO_RECORD),
    ),
)


def _server_decisions(gw: Phigate) -> dict[str, dict[str, str]]:
    """Per queue id and recipient: "action rule via" as the audit trail records it."""
    db = sqlite3.connect(gw.db_path)
    rows = db.execute(
        "SELECT queue_id, recipients, result, detail FROM audit_events WHERE event = 'policy'"
    ).fetchall()
    db.close()
    decisions: dict[str, dict[str, str]] = {}
    for queue_id, recipients, result, detail in rows:
        fields = dict(part.split("=", 1) for part in detail.split() if "=" in part)
        via = fields.get("via", "")
        decisions.setdefault(queue_id, {})[json.loads(recipients)[0]] = (
            f"{result} {fields['rule']} {via}".strip()
        )
    return decisions


def _explained(gw: Phigate, eml: Path, recipients: tuple[str, ...]) -> dict[str, str]:
    args = ["policy", "explain", str(eml), "--from", SENDER, "--principal", "ehr1", "--json"]
    for recipient in recipients:
        args += ["--to", recipient]
    report = json.loads(gw.cli(*args).stdout)
    return {
        r["recipient"]: " ".join(
            [r["decision"]["action"], r["decision"]["rule"], ",".join(r["decision"].get("via", []))]
        ).strip()
        for r in report["recipients"]
    }


def _expectation(decision: str) -> dict[str, object]:
    action, rule, *via = decision.split()
    expected: dict[str, object] = {"action": action, "rule": rule}
    if via:
        expected["via"] = via[0].split(",")
    return expected


def test_intake_explain_and_policy_test_decide_alike(tmp_path: Path) -> None:
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    shutil.copy(shipped_policy_dir() / "default.yaml", policy_dir / "default.yaml")
    (tmp_path / "gw").mkdir()
    gw = Phigate(
        tmp_path / "gw",
        policy_dir=str(policy_dir),
        consent={"purposes": {"flu-clinic": {"description": "Flu clinic news"}}},
    )
    secret = gw.add_principal("ehr1", "clinic.example.org")
    gw.cli("consent", "grant", GRANTED, "--purpose", "marketing", "--source", "admin")
    messages = tmp_path / "messages"
    messages.mkdir()
    queue_ids = []
    with gw:
        for number, case in enumerate(CASES):
            (messages / f"{number}.eml").write_bytes(case.content())
            client = gw.client("ehr1", secret)
            try:
                client.mail(SENDER)
                for recipient in case.recipients:
                    client.rcpt(recipient)
                code, reply = client.data(case.content())
            finally:
                client.quit()
            queue_ids.append(reply.decode().rsplit(" ", 1)[-1] if code == 250 else None)
    decisions = _server_decisions(gw)

    cases = []
    for number, (case, queue_id) in enumerate(zip(CASES, queue_ids, strict=True)):
        assert queue_id is not None, case.name  # each case has a recipient the policy accepts
        server = decisions[queue_id]
        assert set(server) == set(case.recipients)
        # Explain knows no consent records: it must agree wherever the registry has none.
        explained = _explained(gw, messages / f"{number}.eml", case.recipients)
        assert explained[NO_RECORD] == server[NO_RECORD], case.name
        if GRANTED not in case.recipients:
            assert explained == server, case.name
        cases.append(
            {
                "name": case.name,
                "envelope": {"from": SENDER, "to": list(case.recipients), "principal": "ehr1"},
                "message": f"../../messages/{number}.eml",
                "consent": {GRANTED: "granted"} if GRANTED in case.recipients else {},
                "expect": {"recipients": {r: _expectation(d) for r, d in server.items()}},
            }
        )
    # Marketing with consent was decided both ways: delivered to one, refused to the other.
    marketing = decisions[queue_ids[2]]
    assert marketing[GRANTED].startswith("deliver ")
    assert marketing[NO_RECORD].startswith("reject marketing-needs-authorization")

    (policy_dir / "tests").mkdir()
    (policy_dir / "tests" / "paths.yaml").write_text(
        yaml.safe_dump({"version": 1, "cases": cases}, sort_keys=False)
    )
    result = gw.cli("policy", "test", str(policy_dir), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CASES)} passed, 0 failed" in result.stdout
