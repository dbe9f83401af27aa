"""Mode portal: PHI for a recipient without verified TLS stays here; the recipient
gets a notice that carries a link and nothing of the message."""

from __future__ import annotations

import asyncio
import email
import re
import sqlite3
from email.message import Message
from pathlib import Path

import pytest
from harness import Phigate, Sink, audit_since, free_port, message, via_sink, wait_until
from sqlalchemy import select

from gateway.config import PortalConfig
from gateway.delivery.attempt import Attempt
from gateway.delivery.portal import PortalMode
from gateway.portal import custody, outbox
from gateway.portal.notices import Notices
from gateway.settings_loader import SettingsError, load_settings
from gateway.store import portal, queue
from gateway.store.database import Database
from gateway.store.keyring import Keyring, Sealed
from gateway.store.schema import messages

SUBJECT = "CANARY-SUBJ-p7k2 Jane Doe MRN 4411"
BODY = "CANARY-BODY-p7k2 diagnosis E11.9, DOB 02/03/1961"
ATTACHMENT = "CANARY-ATT-p7k2"
MARK = "p7k2"
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/portal/m/[A-Za-z0-9_-]{43})")


def _text_parts(notice: Message) -> list[str]:
    return [
        str(part.get_payload(decode=True), "utf-8")  # type: ignore[arg-type]
        for part in notice.walk()
        if part.get_content_maintype() == "text"
    ]


def test_phi_without_verified_tls_waits_in_the_portal_and_the_notice_has_no_phi(
    tmp_path: Path,
) -> None:
    with Sink() as sink:  # no STARTTLS: verified TLS is not available
        web_port = free_port()
        gw = Phigate(
            tmp_path,
            delivery=via_sink(sink),
            portal={"organisation": "Riverside Clinic", "notice_from": "portal@clinic.example.org"},
            web={"address": f"127.0.0.1:{web_port}", "public_url": f"http://127.0.0.1:{web_port}"},
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        raw = message("Dr Who <ehr@clinic.example.org>", "pat@home.test", SUBJECT, BODY, ATTACHMENT)
        with gw:
            assert gw.submit(secret, "ehr@clinic.example.org", ["pat@home.test"], raw) == {}
            [notice] = sink.wait_for(1)
            wait_until(lambda: gw.json("queue", "ls") == [])
            audit = audit_since(gw, 0)
        parsed = email.message_from_bytes(notice.content)
        assert notice.recipients == ["pat@home.test"]
        assert notice.sender == ""  # no bounce loops
        assert parsed["Subject"] == "Secure message from Riverside Clinic"
        assert "portal@clinic.example.org" in parsed["From"]
        assert parsed["Auto-Submitted"] == "auto-generated"
        texts = _text_parts(parsed)
        assert len(texts) == 2  # plain and HTML
        links = {LINK.search(text).group(1) for text in texts}  # type: ignore[union-attr]
        assert len(links) == 1
        # Nothing of the message: subject, body, attachment name or contents, sender.
        assert MARK.encode() not in notice.content
        assert b"Jane" not in notice.content and b"4411" not in notice.content
        assert b"ehr@clinic.example.org" not in notice.content  # show_sender is off

        db = sqlite3.connect(gw.db_path)
        [(state, recipient, verifier, content)] = db.execute(
            "SELECT state, recipient, verifier, content FROM portal_messages"
        ).fetchall()
        assert (state, recipient) == ("waiting", "pat@home.test")
        token = links.pop().rsplit("/", 1)[1]
        assert token not in repr(verifier) and MARK.encode() not in content
        assert verifier == custody.parse_token(token).verifier  # type: ignore[union-attr]
        events = {row["event"]: row for row in audit}
        assert events["portal_stored"]["result"] == "waiting"
        delivered = [row for row in audit if row["event"] == "delivered"]
        assert any("portal" in (row["detail"] or "") for row in delivered)
        assert MARK not in repr(audit) and token not in repr(audit)
        assert MARK not in gw.log_text() and token not in gw.log_text()
        # The original's own sealed content is shredded once its only job is done.
        assert db.execute(
            "SELECT wrapped_key FROM messages WHERE is_dsn = 0 AND listener = 'submission'"
        ).fetchall() == [(None,)]


def _mode(db: Database, keyring: Keyring, queued: list[int]) -> PortalMode:
    notices = Notices("Riverside Clinic", "portal@clinic.example.org", "phigate.test")
    return PortalMode(
        db,
        keyring,
        notices,
        PortalConfig(expiry_days=7),
        "https://portal.example.org",
        lambda: queued.append(1),
    )


def test_a_repeated_delivery_makes_no_second_copy_or_notice(db: Database, keyring: Keyring) -> None:
    """A worker that dies after storing the copy, before recording the result,
    delivers again: the copy made first stands, and no second notice goes out."""
    queued: list[int] = []
    mode = _mode(db, keyring, queued)
    attempt = Attempt("ehr@clinic.example.org", "Q1", frozenset())
    content = b"Subject: x\r\n\r\nbody\r\n"
    first = asyncio.run(mode.send(attempt, ["pat@home.test"], content))
    again = asyncio.run(mode.send(attempt, ["pat@home.test"], content))
    assert [r.code for r in first + again] == [250, 250]
    assert "earlier" in again[0].reply
    with db.transaction() as conn:
        [copy] = portal.of_message(conn, "Q1")
        notices = conn.execute(
            select(messages.c.queue_id).where(messages.c.listener == outbox.LISTENER)
        ).all()
    assert copy.expires_at == pytest.approx(copy.created_at + 7 * 86400)
    assert [(copy.notice_queue_id,)] == notices
    assert queued == [1, 1]


def test_a_passphrase_copy_without_a_passphrase_is_deferred_not_weakened(
    db: Database, keyring: Keyring
) -> None:
    mode = _mode(db, keyring, [])
    terms = queue.PortalTerms(
        access=portal.PASSPHRASE,
        show_sender=False,
        expiry_days=None,
        read_receipt=False,
        passphrase_hash=None,
    )
    attempt = Attempt("a@clinic.example.org", "Q2", frozenset(), portal_terms={"p@x.test": terms})
    [result] = asyncio.run(mode.send(attempt, ["p@x.test"], b"Subject: x\r\n\r\nbody\r\n"))
    assert (result.code, result.status) == (None, "4.7.0")
    with db.transaction() as conn:
        assert portal.of_message(conn, "Q2") == []


def test_a_broken_notice_template_stops_start_up_naming_file_and_line(tmp_path: Path) -> None:
    templates = tmp_path / "notices"
    templates.mkdir()
    (templates / "notice.txt").write_text(
        "Subject: Secure message\n\nHello {{ organisation }\n"  # unclosed expression
    )
    gw = Phigate(tmp_path, portal={"templates_dir": str(templates)})
    for command, status in (("serve", 1), ("config", 2)):
        args = ("config", "check") if command == "config" else ("serve",)
        result = gw.cli(*args, check=False)
        assert result.returncode == status, result.stderr
        assert "notice.txt, line 3" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["portal", "DSN", "tlsrpt"])
def test_a_listener_may_not_take_the_name_that_marks_phigates_own_mail(
    tmp_path: Path, name: str
) -> None:
    """Mail from such a listener would be DKIM-signed as phigate's own."""
    config = tmp_path / "phigate.yaml"
    config.write_text(f"listeners:\n  - name: {name}\n    address: 127.0.0.1:2525\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    assert "choose another listener name" in str(caught.value)
    assert "line 2" in str(caught.value) or "listeners" in str(caught.value)


def test_the_notice_names_the_sender_only_where_the_policy_allows(
    db: Database, keyring: Keyring
) -> None:
    mode = _mode(db, keyring, [])
    shown = queue.PortalTerms(show_sender=True, expiry_days=3)
    attempt = Attempt(
        "dr.who@clinic.example.org",
        "Q3",
        frozenset(),
        portal_terms={"shown@x.test": shown},  # hidden@x.test: the default terms
    )
    results = asyncio.run(
        mode.send(attempt, ["shown@x.test", "hidden@x.test"], b"Subject: x\r\n\r\nb\r\n")
    )
    assert [r.code for r in results] == [250, 250]
    with db.transaction() as conn:
        copies = {c.recipient: c for c in portal.of_message(conn, "Q3")}
        notices = {
            row.queue_id: keyring.open(
                Sealed(row.key_id, row.wrapped_key, row.content), row.queue_id.encode()
            )
            for row in conn.execute(select(messages).where(messages.c.listener == outbox.LISTENER))
        }
    shown_notice = notices[copies["shown@x.test"].notice_queue_id]
    hidden_notice = notices[copies["hidden@x.test"].notice_queue_id]
    assert b"dr.who@clinic.example.org" in shown_notice
    assert b"dr.who@clinic.example.org" not in hidden_notice
    assert copies["shown@x.test"].expires_at - copies["shown@x.test"].created_at == 3 * 86400
    assert copies["hidden@x.test"].expires_at - copies["hidden@x.test"].created_at == 7 * 86400
