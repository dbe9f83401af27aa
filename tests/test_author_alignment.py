"""From: and Sender: must name domains the session may use; DKIM signs no other.

A client allowed `clinic.example.org` must not get mail DKIM-signed (and so
DMARC-aligned) as another organisation on the relay: every message goes
through a running `phigate serve` to a real SMTP sink, as a sending system
or an attacker would send it, and the admin side is `phigate principal`.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import smtplib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from harness import Phigate, Sink, free_port, via_sink, wait_until

DOMAIN = "clinic.example.org"
SENDER = "ehr@clinic.example.org"
OTHER = "otherclinic.example"  # another organisation on the relay, with a DKIM key
BRAND = "brand.example"  # a brand the CRM sends for
RECIPIENT = "dr@partner.test"

HOLD_POLICY = """\
version: 1
rules:
  - id: hold-for-review
    when: {recipient_domain: held.test}
    action: hold
    reason: Held for review
    via: [standard]
  - id: plain
    action: deliver
    via: [standard]
"""


@dataclass
class Relay:
    gw: Phigate
    sink: Sink
    secrets: dict[str, str]
    legacy_port: int


def audit(gw: Phigate, event: str) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(f"{gw.db_path.as_uri()}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM audit_events WHERE event = ? ORDER BY id", (event,))
        return [dict(row) for row in rows]


def raw(headers: str, body: str = "Your appointment is on Monday.\r\n") -> bytes:
    return f"{headers}To: {RECIPIENT}\r\nSubject: appointment\r\n\r\n{body}".encode()


def send(gw: Phigate, user: str, secret: str, content: bytes, sender: str = SENDER) -> None:
    with gw.client(user, secret) as client:
        client.sendmail(sender, [RECIPIENT], content)


def refusal(gw: Phigate, user: str, secret: str, content: bytes, sender: str = SENDER) -> str:
    """The DATA refusal (code 550) the message gets, as text."""
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(gw, user, secret, content, sender)
    assert refused.value.smtp_code == 550, refused.value
    return refused.value.smtp_error.decode()


def dkim_domains(content: bytes) -> set[str]:
    parsed = email.message_from_bytes(content, policy=email.policy.default)
    fields = parsed.get_all("DKIM-Signature") or []
    tags = (tag.strip().partition("=") for field in fields for tag in str(field).split(";"))
    return {value for name, _, value in tags if name == "d"}


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    tmp = tmp_path_factory.mktemp("authors")
    policy_dir = tmp / "policy"
    policy_dir.mkdir()
    (policy_dir / "policy.yaml").write_text(HOLD_POLICY)
    legacy_port = free_port()
    with Sink() as sink:
        gw = Phigate(
            tmp,
            delivery=via_sink(sink),
            policy_dir=str(policy_dir),
            relay_networks=[
                {
                    "name": "legacy",
                    "networks": ["127.0.0.0/8"],
                    "domains": [DOMAIN],
                    "from_domains": ["Legacy-Brand.Example"],
                }
            ],
        )
        gw.settings["listeners"].append(
            {
                "name": "legacy",
                "address": f"127.0.0.1:{legacy_port}",
                "tls": "none",
                "allow_networks_without_auth": True,
            }
        )
        gw.config.write_text(yaml.safe_dump(gw.settings))
        secrets = {
            "ehr1": gw.add_principal("ehr1", DOMAIN),
            "other": gw.add_principal("other", OTHER),
        }
        crm = gw.cli(
            "principal", "add", "crm", "--domain", "crm.example", "--from-domain", BRAND, "--json"
        )
        secrets["crm"] = yaml.safe_load(crm.stdout)["secret"]
        for domain in (DOMAIN, OTHER, BRAND, "legacy-brand.example"):
            gw.cli("dkim", "keygen", domain, "--selector", "s1")
        with gw:
            yield Relay(gw, sink, secrets, legacy_port)


def test_from_naming_another_organisation_is_refused_at_data_and_audited(relay: Relay) -> None:
    gw, secret = relay.gw, relay.secrets["ehr1"]
    before = len(relay.sink.messages)
    text = refusal(gw, "ehr1", secret, raw(f"From: CEO <ceo@{OTHER}>\r\n"))
    assert text.startswith("5.7.1 From: header names domain otherclinic.example"), text
    assert f"allowed: {DOMAIN}" in text and "CEO" not in text
    # Every address of From counts, and so does Sender.
    both = refusal(gw, "ehr1", secret, raw(f"From: {SENDER}, ceo@{OTHER}\r\n"))
    assert "From: header names domain otherclinic.example" in both
    sender = refusal(gw, "ehr1", secret, raw(f"From: {SENDER}\r\nSender: bot@{OTHER}\r\n"))
    assert sender.startswith("5.7.1 Sender: header names domain otherclinic.example"), sender
    refused = [e for e in audit(gw, "refused") if e["result"] == "data"]
    assert [e["code"] for e in refused] == [550, 550, 550]
    assert all(e["principal"] == "ehr1" and e["sender"] == SENDER for e in refused)
    assert "otherclinic.example" in refused[0]["detail"] and "CEO" not in refused[0]["detail"]
    # The other organisation itself may send as its domain, and is signed for it.
    send(gw, "other", relay.secrets["other"], raw(f"From: ceo@{OTHER}\r\n"), f"ceo@{OTHER}")
    got = relay.sink.wait_for(before + 1)
    assert len(got) == before + 1 and dkim_domains(got[-1].content) == {OTHER}
    assert "Traceback" not in gw.log_text()


@pytest.mark.parametrize(
    "headers,reply",
    [
        ("", "message has 0 From: header fields; exactly one is required"),
        (f"From: {SENDER}\r\nFrom: a@{DOMAIN}\r\n", "message has 2 From: header fields"),
        # Unquoted: one reader sees ceo@other..., another the address in <>.
        (f"From: ceo@{OTHER} <{SENDER}>\r\n", "From: header cannot be read as addresses"),
        ("From: undisclosed-recipients:;\r\n", "From: header names no address"),
        (f"From: {SENDER}\r\nSender: a@{DOMAIN}, b@{DOMAIN}\r\n", "Sender: must be one field"),
    ],
    ids=["no_from", "two_from", "ambiguous", "group_only", "two_senders"],
)
def test_missing_repeated_or_unreadable_authors_are_refused(
    relay: Relay, headers: str, reply: str
) -> None:
    text = refusal(relay.gw, "ehr1", relay.secrets["ehr1"], raw(headers))
    assert text.startswith("5.6.0 ") and reply in text, text


def test_aligned_mail_is_accepted_and_signed_for_the_from_domain(relay: Relay) -> None:
    before = len(relay.sink.messages)
    content = raw(f'From: "Front desk" <desk@{DOMAIN}>\r\nSender: <{SENDER}>\r\n')
    send(relay.gw, "ehr1", relay.secrets["ehr1"], content)
    got = relay.sink.wait_for(before + 1)
    assert dkim_domains(got[-1].content) == {DOMAIN}


def test_principal_from_domains_listed_changed_and_enforced(relay: Relay) -> None:
    gw, secret = relay.gw, relay.secrets["crm"]
    [crm] = [p for p in gw.json("principal", "ls") if p["name"] == "crm"]
    assert (crm["domains"], crm["from_domains"]) == (["crm.example"], [BRAND])
    before = len(relay.sink.messages)
    send(gw, "crm", secret, raw(f"From: news@{BRAND}\r\n"), "bounces@crm.example")
    got = relay.sink.wait_for(before + 1)
    assert dkim_domains(got[-1].content) == {BRAND}

    changed = gw.cli("principal", "set-from-domains", "crm", "--none")
    assert "extra From domains none" in changed.stdout
    text = refusal(gw, "crm", secret, raw(f"From: news@{BRAND}\r\n"), "bounces@crm.example")
    assert "brand.example" in text and "allowed: crm.example" in text
    gw.cli("principal", "set-from-domains", "crm", "BRAND.example")
    [crm] = [p for p in gw.json("principal", "ls") if p["name"] == "crm"]
    assert crm["from_domains"] == [BRAND]
    audited = [e["detail"] for e in audit(gw, "principal") if e["principal"] == "crm"]
    assert audited == [
        "domains=crm.example from_domains=brand.example",
        "from_domains=",
        "from_domains=brand.example",
    ]
    usage = gw.cli("principal", "set-from-domains", "crm", check=False)
    assert usage.returncode != 0 and "--none" in usage.stderr
    bad = gw.cli("principal", "set-from-domains", "crm", "not a domain", check=False)
    assert bad.returncode != 0 and "--from-domain 'not a domain' is not a domain name" in bad.stderr


def test_relay_network_from_domains(relay: Relay) -> None:
    before = len(relay.sink.messages)
    with smtplib.SMTP("127.0.0.1", relay.legacy_port, timeout=10) as client:
        client.sendmail(SENDER, [RECIPIENT], raw("From: clinic@legacy-brand.example\r\n"))
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(SENDER, [RECIPIENT], raw(f"From: ceo@{OTHER}\r\n"))
    assert refused.value.smtp_code == 550
    assert b"allowed: clinic.example.org, legacy-brand.example" in refused.value.smtp_error
    got = relay.sink.wait_for(before + 1)
    assert dkim_domains(got[-1].content) == {"legacy-brand.example"}


def test_queued_mail_is_not_signed_for_a_domain_taken_away(relay: Relay) -> None:
    """Defence in depth: the signer checks the principal's domains as they are when
    it signs; what it may not sign waits (never sent unsigned, never signed)."""
    gw, secret = relay.gw, relay.secrets["crm"]
    gw.cli("principal", "set-from-domains", "crm", BRAND)
    with gw.client("crm", secret) as client:
        client.sendmail("bounces@crm.example", ["review@held.test"], raw(f"From: news@{BRAND}\r\n"))
    [held] = [j for j in gw.json("queue", "ls") if j["recipient"] == "review@held.test"]
    assert held["state"] == "held"
    gw.cli("principal", "set-from-domains", "crm", "--none")
    before = len(relay.sink.messages)
    gw.cli("queue", "release", held["queue_id"])

    def deferred() -> bool:
        rows = [j for j in gw.json("queue", "ls") if j["queue_id"] == held["queue_id"]]
        return bool(rows) and rows[0]["last_status"] == "4.3.0"

    wait_until(deferred)
    [job] = gw.json("queue", "show", held["queue_id"])["recipients"]
    assert "refusing to sign as brand.example" in job["last_reply"], job
    assert len(relay.sink.messages) == before
    gw.cli("principal", "set-from-domains", "crm", BRAND)  # as the other tests expect


@pytest.mark.parametrize(
    "value",
    [
        "a@example.org",
        "  a@Example.ORG ",
        "Dr. Who <who@example.org>",
        '"ceo@otherclinic.example" <a@example.org>',
        '"Front desk"<desk@example.org>',
        "=?utf-8?q?J=C3=BCrgen?= <j@example.org>",
        "<a@example.org>",
        "a.b+c=d_e-f@mail.example.org",
    ],
)
def test_the_quick_reading_of_common_from_fields_agrees_with_the_rfc_5322_parser(
    value: str,
) -> None:
    from email.headerregistry import HeaderRegistry

    from gateway.mail import headers

    assert headers._SIMPLE_MAILBOX.fullmatch(value)  # the quick path reads it
    parsed = HeaderRegistry()("From", value)
    assert not [d for d in parsed.defects if "Obsolete" not in type(d).__name__]
    expected = tuple(a.domain.lower() for a in parsed.addresses)
    assert headers.address_domains(value.encode(), "From") == expected
