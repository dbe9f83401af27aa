"""Mail sent through a running phigate, then reconstructed from the audit trail
with `phigate audit search` and `phigate audit show`: the decisions, the
delivery over verified TLS, the bounce and its DSN, the admin release and who
made it — and never a word of the content."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

from certs import make_certs, server_context
from harness import Phigate, Sink, message, via_sink, wait_until

CANARY_SUBJECT = "canary-subject-4k9 Lab results for Pat Example"
CANARY_BODY = "canary-body-4k9 SSN 123-45-6789"
POLICY = """\
version: 1
defaults:
  action: deliver
  via: [tls]
  subject: keep
rules:
  - id: hold-for-review
    when:
      recipient_domain: held.test
    action: hold
    reason: Held for privacy review
    via: [tls]
"""


def test_search_and_show_reconstruct_a_message(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    (policy_dir / "policy.yaml").write_text(POLICY)
    with Sink(server_context(certs["good"], certs["good_key"])) as sink:
        sink.handler.script = lambda rcpt: "550 5.1.1 no such user" if "nobody" in rcpt else None
        gw = Phigate(
            tmp_path,
            delivery=via_sink(sink, tls="required", ca_file=str(certs["ca"])),
            policy_dir=str(policy_dir),
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            sender = "dr@clinic.example.org"
            recipients = ["ok@partner.test", "nobody@partner.test", "review@held.test"]
            raw = message(sender, recipients[0], CANARY_SUBJECT, CANARY_BODY)
            gw.submit(secret, sender, recipients, raw)
            sink.wait_for(2)  # the message, and the DSN for the bounce
            [held] = gw.json("queue", "ls")
            queue_id = held["queue_id"]
            gw.cli("queue", "release", queue_id)
            sink.wait_for(3)
            wait_until(
                lambda: len(_search(gw, "--queue-id", queue_id, "--event", "delivered")) == 2
            )
            gw.cli("policy", "reload")
            outputs = [
                gw.cli("audit", "show", queue_id).stdout,
                gw.cli("audit", "show", queue_id, "--json").stdout,
                gw.cli("audit", "search", "--since", "2000-01-01").stdout,
                gw.cli("audit", "search", "--json", "--limit", "1000").stdout,
            ]
            life = json.loads(outputs[1])
            by_tls = _search(gw, "--tls", "pkix", "--mode", "tls", "--event", "delivered")
            refused_domain = _search(gw, "--recipient-domain", "partner.test", "--event", "bounced")
            reload = _search(gw, "--event", "policy_reload")
    steps = [(s["step"], s["event"], s["recipients"]) for s in life["steps"]]
    ok, nobody, review = ([r] for r in recipients)
    assert steps[:4] == [
        ("decision", "policy", ok), ("decision", "policy", nobody),
        ("decision", "policy", review), ("accepted", "accepted", recipients),
    ]  # fmt: skip
    later = steps[4:]
    assert ("attempt", "delivered", ok) in later and ("attempt", "bounced", nobody) in later
    assert ("dsn", "dsn", [sender]) in later
    assert ("admin", "released", review) in later
    assert later.index(("admin", "released", review)) < later.index(
        ("attempt", "delivered", review)
    )
    decisions = {s["recipients"][0]: s["facts"] for s in life["steps"] if s["step"] == "decision"}
    assert decisions["review@held.test"]["rule"] == "hold-for-review"
    assert decisions["ok@partner.test"]["rule"] == "defaults"
    assert decisions["ok@partner.test"]["via"] == "tls"
    assert {d["policy"] for d in decisions.values()} == {life["steps"][0]["facts"]["policy"]}
    delivered = next(s for s in life["steps"] if s["event"] == "delivered")
    assert delivered["facts"]["mode"] == "tls" and delivered["facts"]["verify"] == "pkix"
    assert delivered["facts"]["cert"].startswith("sha256:")
    released = next(s for s in life["steps"] if s["event"] == "released")
    assert released["actor"] == f"cli:{getpass.getuser()}"
    summary = life["summary"]
    assert summary["principal"] == "ehr1" and summary["client_ip"] == "127.0.0.1"
    assert summary["phi"] is True  # the body names an SSN
    assert summary["outcomes"] == {
        "ok@partner.test": "delivered", "nobody@partner.test": "bounced",
        "review@held.test": "delivered",
    }  # fmt: skip
    assert summary["message_id"] and summary["size"] > len(CANARY_BODY)

    assert {e["recipients"][0] for e in by_tls} == {"ok@partner.test", "review@held.test"}
    assert [e["queue_id"] for e in refused_domain] == [queue_id]
    assert [(e["result"], e["actor"]) for e in reload] == [("ok", f"cli:{getpass.getuser()}")]
    assert "phi=yes" in outputs[0] and "verify=pkix" in outputs[0]
    for text in outputs:  # metadata only: never the subject or the body
        for canary in ("canary-subject-4k9", "canary-body-4k9", "123-45-6789", "Lab results"):
            assert canary not in text


def _search(gw: Phigate, *args: str) -> list[dict[str, Any]]:
    return list(gw.json("audit", "search", *args)["events"])
