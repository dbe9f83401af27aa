"""What portal pages show of a message, and who may open it (and what the store records)."""

from __future__ import annotations

import dataclasses
from email.message import EmailMessage
from email.policy import SMTP

import pytest

from gateway.config import PortalConfig
from gateway.portal import access, passphrase, reading, replying
from gateway.store import portal, portal_access
from gateway.store.database import Database
from gateway.store.keyring import Sealed
from gateway.store.portal import Copy

KEY = bytes(range(32))


def message(html: str | None = None, plain: str = "plain text") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Dr Who <doctor@clinic.example>"
    msg["Subject"] = "=?utf-8?q?R=C3=A9sultats?="
    msg["Message-ID"] = "<m1@clinic.example>"
    msg.set_content(plain)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def test_html_is_sanitized() -> None:
    shown = reading.read(
        message(
            '<p style="color:red" onclick="x()">Hi<script>alert(1)</script></p>'
            '<img src="http://evil.example/p.png"><img src="data:image/png;base64,AAAA">'
            '<a href="javascript:x()">j</a><a href="https://ok.example/">ok</a>'
            '<iframe src="https://x"></iframe><form><input></form><style>p{}</style>'
        ).as_bytes()
    )
    assert isinstance(shown, reading.Reading)
    assert shown.subject == "Résultats" and shown.text is None
    assert shown.html is not None
    for banned in (
        "script",
        "alert",
        "onclick",
        "style",
        "evil.example",
        "iframe",
        "form",
        "input",
    ):
        assert banned not in shown.html
    assert '<img src="data:image/png;base64,AAAA">' in shown.html
    assert '<a href="https://ok.example/" rel="noopener noreferrer">ok</a>' in shown.html
    assert "javascript" not in shown.html


def test_plain_text_body_and_attachments() -> None:
    msg = message(plain="line one\n<b>not markup</b>\n")
    msg.add_attachment(b"a,b\n", maintype="text", subtype="csv", filename="../../etc/lab\x01.csv")
    msg.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="scan.pdf")
    inner = message(plain="forwarded")
    msg.add_attachment(inner)
    shown = reading.read(msg.as_bytes(policy=SMTP))
    assert isinstance(shown, reading.Reading)
    assert shown.text == "line one\n<b>not markup</b>\n" and shown.html is None
    assert [(a.index, a.filename, a.content_type) for a in shown.attachments] == [
        (0, "lab_.csv", "text/csv"),
        (1, "scan.pdf", "application/pdf"),
        (2, "attachment-3", "message/rfc822"),
    ]
    assert shown.attachments[1].size == 4
    found = reading.attachment(msg.as_bytes(), 1)
    assert found == reading.Download("scan.pdf", "application/pdf", b"%PDF")
    assert reading.attachment(msg.as_bytes(), 3) is None
    assert reading.attachment(msg.as_bytes(), -1) is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"Content-Type: multipart/mixed\r\n\r\nno boundary",
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; '
        b"charset=no-such-charset\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!%%%\r\n",
        b"Subject: =?x-unknown?q?abc?=\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"\xff\xfe<p>",
        bytes(range(256)) * 10,
    ],
)
def test_damaged_mime_never_raises(content: bytes) -> None:
    shown = reading.read(content)
    assert isinstance(shown, reading.Reading | reading.Unreadable)
    assert reading.attachment(content, 0) is None or isinstance(
        reading.attachment(content, 0), reading.Download
    )


def copy(**changes: object) -> Copy:
    base = Copy(
        id=7, queue_id="Q1", recipient="p@example.net", sender="d@clinic.example",
        principal=None, state="waiting", access="code", passphrase_hash=None,
        show_sender=False, read_receipt=False, notice_queue_id=None, created_at=0.0,
        expires_at=10_000.0, opened_at=None, replied_at=None, closed_at=None, views=0,
        downloads=0, code_hash=None, code_expires_at=None, codes_sent=0,
        codes_window_start=None, failed_codes=0, locked_until=None,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_codes_match_only_their_copy_and_expire() -> None:
    code = access.new_code()
    assert len(code) == 8 and code.isdigit()
    stored = copy(code_hash=access.code_hash(KEY, 7, code), code_expires_at=100.0)
    assert access.code_matches(KEY, stored, code, 99.0)
    assert access.code_matches(KEY, stored, f" {code[:4]} {code[4:]} ", 99.0)
    assert not access.code_matches(KEY, stored, code, 100.0)  # expired
    assert not access.code_matches(KEY, dataclasses.replace(stored, id=8), code, 99.0)
    assert not access.code_matches(bytes(32), stored, code, 99.0)
    assert not access.code_matches(KEY, stored, "１２３４５６７８", 99.0)  # not ASCII digits
    assert not access.code_matches(KEY, copy(), code, 99.0)  # no code sent


def test_code_limits_and_lockout() -> None:
    config = PortalConfig(codes_per_hour=2, code_attempts=3, lockout_minutes=10)
    first = access.next_code_window(copy(), config, 1000.0)
    assert first == access.CodeWindow(1, 1000.0)
    second = access.next_code_window(copy(codes_sent=1, codes_window_start=1000.0), config, 1500.0)
    assert second == access.CodeWindow(2, 1000.0)
    full = copy(codes_sent=2, codes_window_start=1000.0)
    assert access.next_code_window(full, config, 2000.0) == 4600.0
    assert access.next_code_window(full, config, 4600.0) == access.CodeWindow(1, 4600.0)
    assert access.lockout_end(2, config, 50.0) is None
    assert access.lockout_end(3, config, 50.0) == 650.0
    assert access.locked_until(copy(locked_until=650.0), 649.0) == 650.0
    assert access.locked_until(copy(locked_until=650.0), 650.0) is None


def test_passphrase_csrf_and_client_rate() -> None:
    # Hashed as intake hashes the header's value; typed as a person types it.
    hashed = passphrase.hash_passphrase(b"correct horse")
    assert passphrase.passphrase_matches(hashed, "correct horse")
    assert passphrase.passphrase_matches(hashed, " correct horse\t")
    assert not passphrase.passphrase_matches(hashed, "correct  horse")
    assert not passphrase.passphrase_matches(hashed, "wrong")
    assert not passphrase.passphrase_matches("not a hash", "correct horse")
    assert not passphrase.passphrase_matches(None, "correct horse")
    cookie = access.new_secret()
    assert access.csrf_valid(KEY, cookie, access.csrf_token(KEY, cookie))
    assert not access.csrf_valid(KEY, access.new_secret(), access.csrf_token(KEY, cookie))
    assert not access.csrf_valid(KEY, None, access.csrf_token(KEY, cookie))
    assert not access.csrf_valid(KEY, cookie, None)
    rate = access.ClientRate(per_minute=2, max_clients=2)
    assert rate.allow("a", 0) and rate.allow("a", 1) and not rate.allow("a", 2)
    assert rate.allow("a", 61)  # a new minute
    assert rate.allow("b", 61)
    assert not rate.allow("c", 62)  # the table is full of live windows: refused, bounded
    assert rate.allow("c", 122)  # old windows pruned


def test_reply_threads_under_the_original() -> None:
    content = replying.compose_reply(
        copy=copy(),
        organisation="Example Clinic",
        portal_address="portal@phigate.example",
        original_subject="Résultats",
        original_message_id="<m1@clinic.example>",
        text="thanks",
        files=[replying.ReplyFile("a.txt", "multipart/mixed", b"x")],
        now=0.0,
    )
    parsed = reading.read(content)
    assert isinstance(parsed, reading.Reading)
    assert parsed.subject == "Re: Résultats"
    assert parsed.sender == '"p@example.net via Example Clinic portal" <portal@phigate.example>'
    assert b"In-Reply-To: <m1@clinic.example>" in content
    assert b"References: <m1@clinic.example>" in content
    assert b"Reply-To: p@example.net" in content and b"To: d@clinic.example" in content
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("a.txt", "application/octet-stream")
    ]


def test_access_records_in_the_store(db: Database) -> None:
    def new(recipient: str) -> portal.NewCopy:
        return portal.NewCopy(
            queue_id="Q1", recipient=recipient, sender="d@clinic.example", principal=None,
            verifier=recipient.ljust(64, "0")[:64], sealed=Sealed("k", b"w", b"c"),
            access="code", passphrase_hash=None, show_sender=False, read_receipt=False,
            notice_queue_id="N1", created_at=0.0, expires_at=10_000.0,
        )  # fmt: skip

    with db.transaction() as conn:
        first = portal.insert_copy(conn, new("a@example.net"))
        second = portal.insert_copy(conn, new("b@example.net"))
        assert portal_access.set_code(
            conn, first, code_hash="h" * 64, expires_at=99.0, codes_sent=1, window_start=1.0
        )
        assert [portal_access.count_failure(conn, first) for _ in range(2)] == [1, 2]
        portal_access.lock(conn, first, 500.0)
        portal_access.start_session(conn, second, "s" * 64, 10.0, 100.0)
    with db.reading() as conn:
        locked = portal.by_id(conn, first)
        assert locked is not None
        assert (locked.locked_until, locked.failed_codes, locked.code_hash) == (500.0, 0, None)
        assert (locked.codes_sent, locked.codes_window_start) == (1, 1.0)
        assert portal_access.session_opens(conn, "s" * 64, second, 50.0)
        assert not portal_access.session_opens(conn, "s" * 64, first, 50.0)  # another copy
        assert not portal_access.session_opens(conn, "s" * 64, second, 100.0)  # ended
    with db.transaction() as conn:
        portal.close(conn, [first], portal.RECALLED, 20.0)
        assert not portal_access.set_code(
            conn, first, code_hash="h" * 64, expires_at=99.0, codes_sent=1, window_start=1.0
        )
        portal_access.start_session(conn, first, "t" * 64, 200.0, 300.0)  # drops ended ones
        assert not portal_access.session_opens(conn, "s" * 64, second, 50.0)
