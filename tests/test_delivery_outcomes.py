"""Deferral, retry, bounce and DSN behaviour against a real SMTP sink."""

from __future__ import annotations

import email
import sqlite3
from email import policy
from pathlib import Path

from harness import Phigate, Sink, message, via_sink, wait_until

CANARIES = ("CANARY-SUBJ-5521", "CANARY-BODY-5521", "CANARY-ATTACH-5521")


def test_temporary_failure_is_retried_until_delivered(tmp_path: Path) -> None:
    with Sink() as sink:
        attempts: list[str] = []

        def first_two_fail(rcpt: str) -> str | None:
            attempts.append(rcpt)
            return "451 4.3.0 try later" if len(attempts) <= 2 else None

        sink.handler.script = first_two_fail
        gw = Phigate(tmp_path, delivery=via_sink(sink))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            gw.submit(secret, "a@clinic.example.org", ["b@partner.test"])
            got = sink.wait_for(1)
            wait_until(lambda: gw.json("queue", "ls") == [])
        assert len(got) == 1 and len(attempts) == 3
        db = sqlite3.connect(gw.db_path)
        events = [r[0] for r in db.execute("SELECT event FROM audit_events ORDER BY id")]
        assert events.count("deferred") == 2 and events.count("delivered") == 1


def test_permanent_failure_bounces_with_content_free_dsn(tmp_path: Path) -> None:
    with Sink() as sink:
        sink.handler.script = lambda rcpt: (
            "550 5.1.1 no such user" if rcpt.startswith("gone@") else None
        )
        gw = Phigate(tmp_path, delivery=via_sink(sink))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        raw = message(
            "ehr@clinic.example.org",
            "gone@partner.test",
            CANARIES[0],
            CANARIES[1],
            attachment=CANARIES[2],
            message_id="<orig-1@clinic.example.org>",
        )
        with gw:
            client = gw.client("ehr1", secret)
            client.sendmail("ehr@clinic.example.org", ["gone@partner.test", "ok@partner.test"], raw)
            client.quit()
            got = sink.wait_for(2)  # the good recipient, then the DSN
            wait_until(lambda: gw.json("queue", "ls") == [])
        delivered = [m for m in got if m.sender == "ehr@clinic.example.org"]
        dsns = [m for m in got if m.sender == ""]
        assert [m.recipients for m in delivered] == [["ok@partner.test"]]
        assert len(dsns) == 1 and dsns[0].recipients == ["ehr@clinic.example.org"]
        dsn = email.message_from_bytes(dsns[0].content, policy=policy.default)
        assert dsn.get_content_type() == "multipart/report"
        assert dsn["In-Reply-To"] == "<orig-1@clinic.example.org>"
        status = next(p for p in dsn.walk() if p.get_content_type() == "message/delivery-status")
        text = status.as_string()
        assert "gone@partner.test" in text and "5.1.1" in text
        for canary in CANARIES:
            assert canary.encode() not in dsns[0].content
        # a bounce of the DSN itself would need a sender: the DSN has none
        db = sqlite3.connect(gw.db_path)
        rows = db.execute("SELECT event, code FROM audit_events WHERE event IN ('bounced','dsn')")
        assert sorted(r[0] for r in rows) == ["bounced", "dsn"]


def test_expired_message_bounces_after_queue_lifetime(tmp_path: Path) -> None:
    with Sink() as sink:
        sink.handler.script = lambda rcpt: "421 4.4.2 busy" if rcpt.startswith("slow@") else None
        gw = Phigate(tmp_path, delivery=via_sink(sink, max_queue_lifetime=1.5))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            gw.submit(secret, "ehr@clinic.example.org", ["slow@partner.test"])
            got = sink.wait_for(1, timeout=30)
        assert got[0].sender == "" and b"4.4.7" in got[0].content


def test_dsn_is_never_bounced(tmp_path: Path) -> None:
    with Sink() as sink:
        # Everything fails permanently, including the DSN to the original sender.
        sink.handler.script = lambda rcpt: "550 5.1.1 no such user"
        gw = Phigate(tmp_path, delivery=via_sink(sink))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            gw.submit(secret, "ehr@clinic.example.org", ["x@partner.test"])
            wait_until(lambda: gw.json("queue", "ls") == [])
        db = sqlite3.connect(gw.db_path)
        assert db.execute("SELECT count(*) FROM messages WHERE is_dsn").fetchone()[0] == 1
        bounced = db.execute("SELECT count(*) FROM jobs WHERE state='bounced'").fetchone()[0]
        assert bounced == 2  # the message and its DSN; no DSN for the DSN


def test_admin_can_retry_and_delete_a_deferred_message(tmp_path: Path) -> None:
    with Sink() as sink:
        sink.handler.script = lambda rcpt: "451 4.3.0 try later"
        gw = Phigate(tmp_path, delivery=via_sink(sink, retry_schedule=[3600.0]))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            gw.submit(secret, "a@clinic.example.org", ["b@partner.test"])
            wait_until(lambda: gw.json("queue", "ls")[0]["attempts"] == 1)
            queue_id = gw.json("queue", "ls")[0]["queue_id"]
            assert "1 delivery due now" in gw.cli("queue", "retry", queue_id).stdout
            wait_until(lambda: gw.json("queue", "ls")[0]["attempts"] == 2)
            assert "content destroyed" in gw.cli("queue", "delete", queue_id).stdout
            info = gw.json("queue", "show", queue_id)
        assert info["content_stored"] is False
        assert info["recipients"][0]["state"] == "deleted"
        assert gw.json("queue", "ls") == []
        missing = gw.cli("queue", "show", "NOPE", check=False)
        assert missing.returncode == 1 and "no message NOPE" in missing.stderr
