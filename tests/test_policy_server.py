"""The policy takes effect in the running server: refusals, holds, modes, rewrites, reload."""

from __future__ import annotations

import email
import json
import signal
import smtplib
import sqlite3
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest
from certs import make_certs, server_context
from harness import Phigate, Sink, message, via_sink, wait_until

CANARY_SUBJECT = "CANARY-SUBJ-7310 SSN 123-45-6789"
CANARY_BODY = "CANARY-BODY-7310"

POLICY = """\
version: 1
settings:
  neutral_subject: Secure message from Clinic
recipient_groups:
  quarantine:
    domains: [held.test]
rules:
  - id: blocked-domain
    when:
      recipient_domain: blocked.test
    action: reject
    reason: Mail to blocked.test is not allowed
  - id: hold-for-review
    when:
      recipient_group: quarantine
    action: hold
    reason: Held for privacy review
    via: [standard]
  - id: verified-only
    when:
      recipient_domain: secure.test
    action: deliver
    via: [smime, tls]
  - id: phi-rewrite
    when:
      phi: true
    action: deliver
    via: [standard]
    subject: neutral_if_phi
    add_headers:
      X-Phigate-Policy: phi
  - id: plain
    action: deliver
    via: [standard]
"""


def write_policy(directory: Path, text: str = POLICY) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policy.yaml").write_text(text)
    return directory


def audit_rows(gw: Phigate, event: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(gw.db_path)
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM audit_events WHERE event = ?", (event,))]
    db.close()
    return rows


def gateway(tmp_path: Path, sink: Sink, **delivery: Any) -> tuple[Phigate, str]:
    gw = Phigate(
        tmp_path,
        delivery=via_sink(sink, **delivery),
        policy_dir=str(write_policy(tmp_path / "policy")),
    )
    return gw, gw.add_principal("ehr1", "clinic.example.org")


def send(gw: Phigate, secret: str, recipients: list[str], subject: str = "hello") -> str:
    raw = message("ehr@clinic.example.org", recipients[0], subject, CANARY_BODY)
    client = gw.client("ehr1", secret)
    try:
        client.sendmail("ehr@clinic.example.org", recipients, raw)
        return str(client.noop())
    finally:
        client.quit()


def test_every_recipient_refused_is_a_550_with_the_rule_reason(tmp_path: Path) -> None:
    with Sink() as sink:
        gw, secret = gateway(tmp_path, sink)
        with gw:
            with pytest.raises(smtplib.SMTPDataError) as info:
                send(gw, secret, ["a@blocked.test", "b@blocked.test"])
            code, reply = info.value.smtp_code, info.value.smtp_error
            assert code == 550
            assert b"5.7.1 Mail to blocked.test is not allowed" in reply
            assert b"policy rule blocked-domain" in reply
            assert gw.json("queue", "ls") == []
        decisions = audit_rows(gw, "policy")
        assert [(r["result"], json.loads(r["recipients"])) for r in decisions] == [
            ("reject", ["a@blocked.test"]),
            ("reject", ["b@blocked.test"]),
        ]
        assert all("rule=blocked-domain" in r["detail"] for r in decisions)
        assert audit_rows(gw, "accepted") == []


def test_some_recipients_refused_get_a_content_free_dsn(tmp_path: Path) -> None:
    with Sink() as sink:
        gw, secret = gateway(tmp_path, sink)
        with gw:
            send(gw, secret, ["ok@partner.test", "no@blocked.test"])
            got = sink.wait_for(2)
            wait_until(lambda: gw.json("queue", "ls") == [])
        delivered = [m for m in got if m.sender]
        dsns = [m for m in got if not m.sender]
        assert [m.recipients for m in delivered] == [["ok@partner.test"]]
        assert len(dsns) == 1 and dsns[0].recipients == ["ehr@clinic.example.org"]
        report = dsns[0].content
        assert b"no@blocked.test" in report and b"5.7.1" in report
        assert b"Mail to blocked.test is not allowed" in report
        assert CANARY_BODY.encode() not in report and b"hello" not in report
        accepted = audit_rows(gw, "accepted")
        assert [json.loads(r["recipients"]) for r in accepted] == [["ok@partner.test"]]
        refused = [r for r in audit_rows(gw, "policy") if r["result"] == "reject"]
        assert len(refused) == 1 and "rule=blocked-domain" in refused[0]["detail"]


def test_held_recipient_waits_for_release(tmp_path: Path) -> None:
    with Sink() as sink:
        gw, secret = gateway(tmp_path, sink)
        with gw:
            send(gw, secret, ["review@held.test"])
            queued = gw.json("queue", "ls")
            assert [(j["recipient"], j["state"]) for j in queued] == [("review@held.test", "held")]
            queue_id = queued[0]["queue_id"]
            wait_until(lambda: audit_rows(gw, "accepted") != [])
            # Held: nothing is delivered however long the workers poll.
            assert sink.messages == []
            info = gw.json("queue", "show", queue_id)
            assert info["recipients"][0]["rule"] == "hold-for-review"
            result = gw.cli("queue", "release", queue_id)
            assert "1 held recipient" in result.stdout
            got = sink.wait_for(1)
            again = gw.cli("queue", "release", queue_id, check=False)
        assert got[0].recipients == ["review@held.test"]
        assert again.returncode != 0 and "no held recipients" in again.stderr
        assert len(audit_rows(gw, "released")) == 1


def test_phi_subject_is_replaced_and_headers_added(tmp_path: Path) -> None:
    with Sink() as sink:
        gw, secret = gateway(tmp_path, sink)
        with gw:
            send(gw, secret, ["dr@partner.test"], subject=CANARY_SUBJECT)
            got = sink.wait_for(1)
        delivered = email.message_from_bytes(got[0].content, policy=email_policy.default)
        assert delivered["Subject"] == "Secure message from Clinic"
        assert delivered.get_all("Subject") == ["Secure message from Clinic"]
        assert delivered["X-Phigate-Policy"] == "phi"
        assert CANARY_BODY in delivered.get_content()
        # The decision is audited without the subject or its PHI.
        decision = audit_rows(gw, "policy")[0]
        assert "rule=phi-rewrite" in decision["detail"] and "subject=neutral" in decision["detail"]
        dump = json.dumps(audit_rows(gw, "policy") + audit_rows(gw, "accepted"))
        assert "CANARY" not in dump and "123-45-6789" not in dump


def test_tls_mode_never_falls_back_to_plaintext(tmp_path: Path) -> None:
    # The sink offers no STARTTLS: tls is impossible and smime is not available
    # (no certificate), so the message waits instead of leaving unprotected.
    with Sink() as sink:
        gw, secret = gateway(tmp_path, sink)
        with gw:
            send(gw, secret, ["dr@secure.test"])
            wait_until(lambda: len(audit_rows(gw, "deferred")) >= 1)
            assert sink.messages == []
            jobs = gw.json("queue", "ls")
        assert jobs[0]["last_status"] == "4.7.5"
        assert "mode=tls" in audit_rows(gw, "deferred")[0]["detail"]


def test_tls_mode_delivers_over_verified_tls(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    with Sink(tls_context=server_context(certs["good"], certs["good_key"])) as sink:
        gw, secret = gateway(tmp_path, sink, ca_file=str(certs["ca"]))
        with gw:
            send(gw, secret, ["dr@secure.test"])
            got = sink.wait_for(1)
        assert got[0].tls
        delivered = audit_rows(gw, "delivered")
        assert "mode=tls" in delivered[0]["detail"]


def test_reload_swaps_policy_and_keeps_it_on_error(tmp_path: Path) -> None:
    with Sink() as sink:
        gw, secret = gateway(tmp_path, sink)
        policy_dir = tmp_path / "policy"
        with gw:
            send(gw, secret, ["x@later.test"])
            first = audit_rows(gw, "policy")[-1]["detail"]
            assert "rule=plain" in first
            # A valid change, loaded with SIGHUP.
            write_policy(
                policy_dir,
                POLICY.replace("recipient_domain: blocked.test", "recipient_domain: later.test"),
            )
            result = gw.cli("policy", "reload")
            assert "Reloaded policy version" in result.stdout
            with pytest.raises(smtplib.SMTPDataError):
                send(gw, secret, ["x@later.test"])
            # A broken change: the CLI refuses, the server keeps the running policy.
            write_policy(policy_dir, POLICY + "  - id: broken\n    action: reject\n")
            broken = gw.cli("policy", "reload", check=False)
            assert broken.returncode == 1
            assert "policy.yaml:" in broken.stderr and "needs a reason" in broken.stderr
            # Even a SIGHUP straight to the server cannot load it.
            assert gw.proc is not None
            gw.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "policy_reload_failed" in gw.log_text())
            with pytest.raises(smtplib.SMTPDataError):
                send(gw, secret, ["x@later.test"])
        versions = {d["detail"].split()[0] for d in audit_rows(gw, "policy")}
        assert len(versions) == 2  # policy=<first>, policy=<reloaded>


def test_invalid_policy_stops_start_up_with_located_error(tmp_path: Path) -> None:
    bad = tmp_path / "policy"
    write_policy(bad, "version: 1\nrules:\n  - id: x\n    action: deliver\n    via: [tls, tls]\n")
    gw = Phigate(tmp_path, policy_dir=str(bad))
    assert gw.proc is None
    result = gw.cli("serve", check=False)
    assert result.returncode != 0
    assert "policy.yaml:5" in result.stderr and "via lists a mode twice" in result.stderr


def test_reload_reaches_every_server_process(tmp_path: Path) -> None:
    with Sink() as sink:
        policy_dir = write_policy(tmp_path / "policy")
        gw = Phigate(tmp_path, delivery=via_sink(sink), policy_dir=str(policy_dir), processes=2)
        with gw:
            wait_until(lambda: len(policy_states(gw)) == 2)
            write_policy(policy_dir, POLICY.replace("blocked.test", "other.test"))
            result = gw.cli("policy", "reload")
            running = policy_states(gw)
        lines = result.stdout.splitlines()
        new_version = lines[-1].split("Reloaded policy version ")[1].split()[0]
        assert lines[-1].endswith(f"on 1 node from {policy_dir}.")
        assert sorted(line.split()[1] for line in lines[1:-1]) == sorted(
            str(pid) for pid, _ in running
        )
        assert all(line.split()[2:] == [new_version, "reloaded"] for line in lines[1:-1])
        assert {version for _, version in running} == {new_version}
        # A clean stop removes its processes' rows.
        assert policy_states(gw) == []


def policy_states(gw: Phigate) -> list[tuple[int, str]]:
    db = sqlite3.connect(gw.db_path)
    rows = db.execute("SELECT pid, version FROM policy_states").fetchall()
    db.close()
    return [(int(pid), str(version)) for pid, version in rows]
