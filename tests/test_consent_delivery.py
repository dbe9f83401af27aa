"""Consent enforced end to end: a marketing blast is split by consent at intake,
checked again at delivery, and leaves with one-click unsubscribe; opt-outs by link
and by mail reach the registry and stop the next message.

Real parts throughout: the phigate server process, smtplib as the CRM, an SMTP
sink as the recipients' server, httpx as the recipient's mail client following
List-Unsubscribe, and the `phigate consent` CLI as the admin.
"""

from __future__ import annotations

import email
import email.policy
import re
import smtplib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from harness import Phigate, Sink, free_port, message, via_sink, wait_until

POSTAL = "Riverside Clinic, 12 Elm Street, Springfield, IL 62701"
POLICY = f"""\
version: 1
settings:
  can_spam_footer: "{POSTAL}"
defaults:
  action: deliver
  via: [standard]
  subject: keep
categories:
  - id: marked
    when: {{category_header: marketing}}
    category: marketing
rules:
  - id: opted-out
    when: {{category: marketing, consent: opted_out}}
    action: reject
    reason: The recipient has opted out of marketing mail
  - id: needs-authorization
    when: {{category: marketing, consent: [none, revoked, expired]}}
    action: reject
    reason: Marketing mail needs the recipient's written authorization
  - id: review-campaign
    when: {{category: marketing, header_present: X-Review}}
    action: hold
    reason: campaign review
"""
CRM = "crm@clinic.example.org"


def campaign(to: str, *, review: bool = False) -> bytes:
    raw = message(CRM, to, "Flu clinic on Saturday", "Walk in for your flu shot.\n")
    head = b"X-Phigate-Category: marketing\r\n" + (b"X-Review: yes\r\n" if review else b"")
    return head + raw


def jobs(gw: Phigate) -> dict[str, dict[str, Any]]:
    return {row["recipient"]: row for row in gw.json("queue", "ls", "--all")}


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("consent")
    policy_dir = tmp / "policy"
    policy_dir.mkdir()
    (policy_dir / "policy.yaml").write_text(POLICY)
    inbound = free_port()
    web = free_port()
    with Sink() as sink:
        gw = Phigate(
            tmp,
            policy_dir=str(policy_dir),
            delivery=via_sink(sink),
            web={"address": f"127.0.0.1:{web}", "public_url": f"http://127.0.0.1:{web}"},
        )
        gw.settings["listeners"].append(
            {
                "name": "inbound",
                "address": f"127.0.0.1:{inbound}",
                "tls": "none",
                "accept_unsubscribe": True,
            }
        )
        gw.config.write_text(yaml.safe_dump(gw.settings))
        secret = gw.add_principal("crm", "clinic.example.org")
        for who in ("granted@home.example", "later-revoked@home.example", "held@home.example"):
            gw.cli("consent", "grant", who, "--purpose", "marketing", "--source", "ehr")
        gw.cli("consent", "opt-out", "out@home.example")
        with gw:
            yield {"gw": gw, "sink": sink, "secret": secret, "inbound": inbound, "web": web}


def test_blast_delivers_to_the_consented_and_sends_one_summary_dsn(
    relay: dict[str, Any],
) -> None:
    gw, sink = relay["gw"], relay["sink"]
    to = ["granted@home.example", "nobody@home.example", "out@home.example"]
    refused = gw.submit(relay["secret"], CRM, to, campaign(to[0]), user="crm")
    assert refused == {}  # 250 for the message: the blast is accepted for some
    got = sink.wait_for(2)
    delivered = [m for m in got if m.recipients == ["granted@home.example"]]
    dsns = [m for m in got if m.sender == "" and m.recipients == [CRM]]
    assert len(delivered) == 1 and len(dsns) == 1
    notice = dsns[0].content.decode()
    assert "nobody@home.example" in notice and "out@home.example" in notice
    assert "Walk in for your flu shot" not in notice  # no content in the DSN
    relay["delivered"] = delivered[0].content


def test_marketing_leaves_with_one_click_unsubscribe_and_footer(relay: dict[str, Any]) -> None:
    sent = email.message_from_bytes(relay["delivered"], policy=email.policy.default)
    links = re.findall(r"<([^>]+)>", str(sent["List-Unsubscribe"]))
    assert links[0].startswith(f"http://127.0.0.1:{relay['web']}/unsubscribe/")
    assert links[1].startswith("mailto:unsubscribe+")
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    for link in links:  # no address or its local part in clear
        assert "granted" not in link and "home.example" not in link
    body = sent.get_body(("plain",))
    assert body is not None and POSTAL in body.get_content()
    assert sent["DKIM-Signature"] is None  # no key for the domain: nothing claimed


def test_one_click_post_opts_out_and_the_next_campaign_is_refused(relay: dict[str, Any]) -> None:
    gw = relay["gw"]
    sent = email.message_from_bytes(relay["delivered"], policy=email.policy.default)
    url = re.findall(r"<([^>]+)>", str(sent["List-Unsubscribe"]))[0]
    assert httpx.get(url, timeout=10).status_code == 200  # a GET changes nothing
    assert gw.json("consent", "show", "granted@home.example")["states"]["marketing"] == "granted"
    answer = httpx.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert answer.status_code == 200
    states = gw.json("consent", "show", "granted@home.example")["states"]
    assert states["marketing"] == "opted_out"
    with pytest.raises(smtplib.SMTPDataError) as refused:
        gw.submit(
            relay["secret"],
            CRM,
            ["granted@home.example"],
            campaign("granted@home.example"),
            user="crm",
        )
    assert refused.value.smtp_code == 550 and b"opted out" in refused.value.smtp_error


def test_revocation_while_queued_stops_the_message(relay: dict[str, Any]) -> None:
    gw, sink = relay["gw"], relay["sink"]
    before = len(sink.messages)
    who = "held@home.example"
    gw.submit(relay["secret"], CRM, [who], campaign(who, review=True), user="crm")
    held = jobs(gw)[who]
    assert held["state"] == "held"
    gw.cli("consent", "revoke", who, "--purpose", "marketing")
    gw.cli("queue", "release", held["queue_id"])
    wait_until(lambda: jobs(gw)[who]["state"] == "bounced", 20)
    assert jobs(gw)[who]["last_status"] == "5.7.1"
    assert "consent revoked while queued" in str(gw.json("queue", "show", held["queue_id"]))
    got = sink.wait_for(before + 1)  # the content-free DSN, not the campaign
    assert [m.recipients for m in got[before:]] == [[CRM]]
    assert b"Walk in for your flu shot" not in got[-1].content


def test_mailto_unsubscribe_through_the_inbound_listener(relay: dict[str, Any]) -> None:
    gw, sink = relay["gw"], relay["sink"]
    who = "later-revoked@home.example"
    before = len(sink.messages)
    gw.submit(relay["secret"], CRM, [who], campaign(who), user="crm")
    got = sink.wait_for(before + 1)
    sent = email.message_from_bytes(got[-1].content, policy=email.policy.default)
    mailto = re.findall(r"<mailto:([^>]+)>", str(sent["List-Unsubscribe"]))[0]
    queued_before = gw.json("queue", "ls", "--all")
    with smtplib.SMTP("127.0.0.1", relay["inbound"], timeout=10) as client:
        # Nothing but the unsubscribe address is accepted without AUTH.
        client.ehlo()
        code, _ = client.docmd("MAIL FROM:<someone@home.example>")
        assert code == 250
        code, _ = client.docmd("RCPT TO:<anyone@elsewhere.example>")
        assert code == 550
        client.rset()
        client.sendmail("someone@home.example", [mailto], b"Subject: unsubscribe\r\n\r\nstop\r\n")
    states = gw.json("consent", "show", who)["states"]
    assert states["marketing"] == "opted_out"
    # The unsubscribe mail itself was read for its address only: never queued or relayed.
    assert gw.json("queue", "ls", "--all") == queued_before
    assert b"stop\r\n" not in b"".join(m.content for m in sink.messages)
    with smtplib.SMTP("127.0.0.1", relay["inbound"], timeout=10) as client:
        tampered = mailto.replace("unsubscribe+", "unsubscribe+aa", 1)
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("someone@home.example", [tampered], b"Subject: x\r\n\r\nx\r\n")


def test_unreadable_registry_holds_marketing_back_until_it_is_readable(
    relay: dict[str, Any],
) -> None:
    """Fail closed: consent that cannot be checked before delivery is not assumed."""
    gw, sink = relay["gw"], relay["sink"]
    who = "outage@home.example"
    gw.cli("consent", "grant", who, "--purpose", "marketing", "--source", "ehr")
    gw.submit(relay["secret"], CRM, [who], campaign(who, review=True), user="crm")
    held = jobs(gw)[who]
    before = len(sink.messages)
    with sqlite3.connect(gw.db_path) as db:  # the registry becomes unreadable
        db.execute("ALTER TABLE consent_opt_outs RENAME TO consent_opt_outs_away")
    try:
        gw.cli("queue", "release", held["queue_id"])
        wait_until(lambda: jobs(gw)[who]["last_status"] == "4.3.0", 20)
        assert jobs(gw)[who]["state"] in ("queued", "active")
        assert len(sink.messages) == before  # not sent while consent is unknown
    finally:
        with sqlite3.connect(gw.db_path) as db:
            db.execute("ALTER TABLE consent_opt_outs_away RENAME TO consent_opt_outs")
    wait_until(lambda: jobs(gw)[who]["state"] == "delivered", 20)
    assert [m.recipients for m in sink.messages[before:]] == [[who]]


def test_no_address_appears_in_the_log(relay: dict[str, Any]) -> None:
    log = relay["gw"].log_text()
    assert "granted@home.example" not in log and "Walk in for your flu shot" not in log


def test_a_footer_that_cannot_be_added_defers_then_bounces(tmp_path: Path) -> None:
    """A delivery error (here the footer meets a charset Python does not know) is
    a counted deferral, audited by its type only, and bounces at expiry with a
    content-free DSN: never a job left active without an answer."""
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    (policy_dir / "policy.yaml").write_text(POLICY)
    who = "pat@home.example"
    raw = campaign(who).replace(b'charset="utf-8"', b'charset="x-no-such-charset"')
    assert b"x-no-such-charset" in raw
    with Sink() as sink:
        gw = Phigate(
            tmp_path,
            policy_dir=str(policy_dir),
            delivery=via_sink(sink, max_queue_lifetime=6.0, retry_schedule=[2.0]),
        )
        secret = gw.add_principal("crm", "clinic.example.org")
        gw.cli("consent", "grant", who, "--purpose", "marketing", "--source", "ehr")
        shown: dict[str, Any] = {}

        def deferred(queue_id: str) -> bool:
            shown.update(gw.json("queue", "show", queue_id)["recipients"][0])
            return shown["state"] == "queued" and shown["attempts"] >= 1

        with gw:
            gw.submit(secret, CRM, [who], raw, user="crm")
            queue_id = jobs(gw)[who]["queue_id"]
            wait_until(lambda: deferred(queue_id), 20)
            assert shown["last_status"] == "4.3.0" and "LookupError" in shown["last_reply"]
            got = sink.wait_for(1, timeout=30)
            wait_until(lambda: jobs(gw)[who]["state"] == "bounced", 20)
        assert [(m.sender, m.recipients) for m in got] == [("", [CRM])]  # the DSN only
        assert b"4.4.7" in got[0].content and b"LookupError" in got[0].content
        assert b"Walk in for your flu shot" not in got[0].content
        with sqlite3.connect(gw.db_path) as db:
            details = db.execute(
                "SELECT event, detail FROM audit_events WHERE event IN ('deferred', 'bounced')"
            ).fetchall()
        assert {event for event, _ in details} == {"deferred", "bounced"}
        for _event, detail in details:  # the error's type, never its text
            assert "LookupError" in detail and "x-no-such-charset" not in detail
        assert "x-no-such-charset" not in gw.log_text()
