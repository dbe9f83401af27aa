"""Delivery status notifications: structure, RFC 3464 fields, and no content leaks."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import inspect
import re
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage, Message
from typing import Any

import pytest

from gateway.bounce.dsn import DIAGNOSTIC_MAX, FailedRecipient, build_dsn, is_null_sender

ARRIVAL = datetime(2024, 3, 1, 8, 30, tzinfo=UTC)
ATTEMPT = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2024, 3, 1, 9, 0, 5, tzinfo=UTC)

CANARIES = (
    "CANARY-SUBJECT-7f3a",
    "CANARY-BODY-91c2",
    "CANARY-ATTACHMENT-55de",
    "CANARY-HEADER-0b17",
    "CANARY-CC-4e88",
)


def _original() -> EmailMessage:
    """A message full of PHI-like canaries, as the relay would have queued it."""
    msg = EmailMessage()
    msg["From"] = "Dr Alice <alice@clinic.example>"
    msg["To"] = "bob@hospital.example"
    msg["Cc"] = f"{CANARIES[4]}@hospital.example"
    msg["Subject"] = f"Lab results {CANARIES[0]}"
    msg["Message-ID"] = "<orig-123@clinic.example>"
    msg["X-Patient-Ref"] = CANARIES[3]
    msg.set_content(f"Patient diagnosis: {CANARIES[1]}\n")
    msg.add_attachment(
        b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename=f"{CANARIES[2]}.pdf"
    )
    return msg


def _failed(**overrides: Any) -> FailedRecipient:
    fields: dict[str, Any] = {
        "recipient": "bob@hospital.example",
        "status": "5.1.1",
        "diagnostic": "smtp; 550 5.1.1 <bob@hospital.example>: user unknown",
        "remote_mta": "mx1.hospital.example",
        "last_attempt": ATTEMPT,
    }
    fields.update(overrides)
    return FailedRecipient(**fields)


def _build(failed: list[FailedRecipient] | None = None, **overrides: Any) -> bytes:
    kwargs: dict[str, Any] = {
        "reporting_mta": "relay.clinic.example",
        "from_address": "MAILER-DAEMON@relay.clinic.example",
        "to_address": "alice@clinic.example",
        "queue_id": "Q7K2M9",
        "original_message_id": "<orig-123@clinic.example>",
        "arrival": ARRIVAL,
        "failed": failed if failed is not None else [_failed()],
        "now": NOW,
    }
    kwargs.update(overrides)
    return build_dsn(**kwargs)


def _parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _parts(msg: Message) -> list[Message]:
    payload = msg.get_payload()
    assert isinstance(payload, list)
    parts = [part for part in payload if isinstance(part, Message)]
    assert len(parts) == len(payload)
    return parts


def _status_groups(raw: bytes) -> list[Message]:
    """Per-message group followed by per-recipient groups, via the stdlib parser."""
    status = _parts(email.message_from_bytes(raw))[1]
    assert status.get_content_type() == "message/delivery-status"
    return _parts(status)


def _decoded_text(msg: Message) -> str:
    chunks = []
    for part in msg.walk():
        body = part.get_payload(decode=True)
        if isinstance(body, bytes):
            chunks.append(body.decode("utf-8", "replace"))
    return "\n".join(chunks)


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]", " ", value)


def _status_text(raw: bytes) -> str:
    """The raw body of the message/delivery-status part."""
    text = raw.decode("utf-8")
    start = text.index("Content-Type: message/delivery-status")
    body = text[text.index("\r\n\r\n", start) + 4 :]
    return body[: body.index("\r\n--")]


# -- privacy ---------------------------------------------------------------------


def test_no_original_content_reaches_the_dsn() -> None:
    original = _original()
    raw = _build(original_message_id=original["Message-ID"])

    parsed = _parse(raw)
    decoded = _decoded_text(parsed)
    for canary in CANARIES:
        assert canary.encode() not in raw
        assert canary not in decoded
    assert "Lab results" not in decoded
    assert "diagnosis" not in decoded
    # The Message-ID is the one piece of metadata that is carried over.
    assert parsed["In-Reply-To"] == "<orig-123@clinic.example>"
    assert parsed["References"] == "<orig-123@clinic.example>"


def test_builder_api_cannot_take_message_content() -> None:
    params = inspect.signature(build_dsn).parameters
    assert set(params) == {
        "reporting_mta",
        "from_address",
        "to_address",
        "queue_id",
        "original_message_id",
        "arrival",
        "failed",
        "now",
    }
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    assert {f.name for f in dataclasses.fields(FailedRecipient)} == {
        "recipient",
        "status",
        "diagnostic",
        "remote_mta",
        "last_attempt",
    }
    with pytest.raises(TypeError):
        _build(original=_original())
    with pytest.raises(TypeError):
        _build(headers=_original().as_bytes())


def test_no_original_headers_or_message_part() -> None:
    parsed = _parse(_build())
    types = [part.get_content_type() for part in _parts(parsed)]
    assert types == ["text/plain", "message/delivery-status"]
    assert "text/rfc822-headers" not in types
    assert "message/rfc822" not in types


# -- structure -------------------------------------------------------------------


def test_top_level_headers() -> None:
    raw = _build()
    msg = _parse(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["From"].addresses[0].display_name == "Mail Delivery System"
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@relay.clinic.example"
    assert msg["To"].addresses[0].addr_spec == "alice@clinic.example"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"].datetime == NOW
    assert re.fullmatch(r"<[0-9a-f]{32}@relay\.clinic\.example>", msg["Message-ID"])


def test_lines_are_crlf_terminated() -> None:
    raw = _build()
    assert raw.endswith(b"\r\n")
    stripped = raw.replace(b"\r\n", b"")
    assert b"\n" not in stripped
    assert b"\r" not in stripped
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_message_id_is_fresh() -> None:
    first, second = _parse(_build()), _parse(_build())
    assert first["Message-ID"] != second["Message-ID"]


def test_human_part_names_queue_recipients_and_reasons() -> None:
    failed = [
        _failed(),
        _failed(
            recipient="carol@lab.example",
            status="4.4.7",
            diagnostic="smtp; 451 4.4.1 try again later",
            remote_mta=None,
        ),
    ]
    human = _parts(_parse(_build(failed)))[0]
    assert isinstance(human, EmailMessage)
    text = human.get_content()
    assert "Q7K2M9" in text
    assert "bob@hospital.example" in text
    assert "smtp; 550 5.1.1 <bob@hospital.example>: user unknown" in text
    assert "carol@lab.example" in text
    assert "451 4.4.1 try again later" in text
    assert "original message content is not included" in text


def test_delivery_status_fields() -> None:
    failed = [
        _failed(),
        _failed(
            recipient="carol@lab.example",
            status="4.4.7",
            diagnostic="connection timed out",
            remote_mta=None,
            last_attempt=datetime(2024, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=2))),
        ),
    ]
    raw = _build(failed)
    per_message, bob, carol = _status_groups(raw)

    assert per_message["Reporting-MTA"] == "dns; relay.clinic.example"
    assert per_message["Arrival-Date"] == "Fri, 01 Mar 2024 08:30:00 +0000"
    assert per_message["Final-Recipient"] is None

    assert bob["Final-Recipient"] == "rfc822; bob@hospital.example"
    assert bob["Action"] == "failed"
    assert bob["Status"] == "5.1.1"
    assert bob["Remote-MTA"] == "dns; mx1.hospital.example"
    assert bob["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@hospital.example>: user unknown"
    assert bob["Last-Attempt-Date"] == "Fri, 01 Mar 2024 09:00:00 +0000"

    assert carol["Final-Recipient"] == "rfc822; carol@lab.example"
    assert carol["Status"] == "4.4.7"
    assert carol["Remote-MTA"] is None
    # Our own reasons get a non-SMTP diagnostic type.
    assert carol["Diagnostic-Code"] == "X-Phigate; connection timed out"
    assert carol["Last-Attempt-Date"] == "Fri, 01 Mar 2024 10:00:00 +0200"

    # RFC 3464 §2.1: groups separated by exactly one blank line, none at the end.
    blocks = _status_text(raw).split("\r\n\r\n")
    assert len(blocks) == 3
    assert blocks[0].startswith("Reporting-MTA: dns; relay.clinic.example\r\n")
    assert blocks[1].startswith("Final-Recipient: rfc822; bob@hospital.example\r\n")
    assert all(block.strip() for block in blocks)


def test_smtp_reply_without_type_gets_smtp_prefix() -> None:
    (_, rcpt) = _status_groups(_build([_failed(diagnostic="550 5.7.1 relaying denied")]))
    assert rcpt["Diagnostic-Code"] == "smtp; 550 5.7.1 relaying denied"


def test_internationalised_recipient_uses_utf8_xtext() -> None:
    (_, rcpt) = _status_groups(_build([_failed(recipient="jörg+x@exämple.org")]))
    assert rcpt["Final-Recipient"] == r"utf-8; j\x{F6}rg\x{2B}x@ex\x{E4}mple.org"


def test_no_in_reply_to_without_message_id() -> None:
    msg = _parse(_build(original_message_id=None))
    assert msg["In-Reply-To"] is None
    assert msg["References"] is None


def test_naive_datetimes_are_utc() -> None:
    raw = _build(arrival=datetime(2024, 3, 1, 8, 30), now=datetime(2024, 3, 1, 9, 0))
    assert _parse(raw)["Date"].datetime == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert _status_groups(raw)[0]["Arrival-Date"] == "Fri, 01 Mar 2024 08:30:00 +0000"


# -- sanitising ------------------------------------------------------------------


def test_diagnostic_crlf_injection_is_neutralised() -> None:
    hostile = (
        "550 5.1.1 unknown\r\nSubject: injected\r\n\r\nFinal-Recipient: rfc822; evil@x\x00\x1b[2J"
    )
    raw = _build([_failed(diagnostic=hostile)])
    groups = _status_groups(raw)
    assert len(groups) == 2
    rcpt = groups[1]
    code = _unfold(rcpt["Diagnostic-Code"])
    assert "\r" not in code and "\n" not in code
    assert "\x00" not in code and "\x1b" not in code
    assert code.startswith("smtp; 550 5.1.1 unknown Subject: injected")
    assert rcpt.get_all("Final-Recipient") == ["rfc822; bob@hospital.example"]
    assert _parse(raw)["Subject"] == "Undelivered Mail Returned to Sender"
    assert b"\r\nSubject: injected" not in raw


def test_encoded_word_cannot_smuggle_line_breaks() -> None:
    # The stdlib header parser decodes RFC 2047 words, which would turn this
    # back into CR/LF if it were left intact.
    hostile = "550 =?utf-8?q?x=0D=0ASubject:_injected?="
    raw = _build(
        [_failed(diagnostic=hostile)],
        original_message_id="<=?utf-8?q?a=0D=0AX-Evil:_1?=@x>",
    )
    msg = _parse(raw)
    assert msg["X-Evil"] is None
    assert msg["In-Reply-To"] is None
    assert b"\r\nSubject: injected" not in raw
    code = _status_groups(raw)[1]["Diagnostic-Code"]
    assert "=?" not in code


def test_diagnostic_is_capped() -> None:
    long_reply = "550 5.1.1 " + "word " * 200
    raw = _build([_failed(diagnostic=long_reply)])
    code = _status_groups(raw)[1]["Diagnostic-Code"]
    unfolded = _unfold(code)
    assert len(unfolded) <= DIAGNOSTIC_MAX
    assert unfolded.startswith("smtp; 550 5.1.1 word")
    # Folded at spaces, never into RFC 2047 encoded-words.
    assert all(len(line) <= 78 for line in _status_text(raw).split("\r\n"))


def test_unbreakable_diagnostic_is_not_encoded() -> None:
    raw = _build([_failed(diagnostic="550 " + "x" * 400)])
    code = _status_groups(raw)[1]["Diagnostic-Code"]
    assert "=?" not in code
    assert len(_unfold(code)) <= DIAGNOSTIC_MAX


def test_bad_remote_mta_is_omitted() -> None:
    (_, rcpt) = _status_groups(_build([_failed(remote_mta="mx.example\r\nX-Evil: 1")]))
    assert rcpt["Remote-MTA"] is None
    assert rcpt["X-Evil"] is None


# -- refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("sender", ["", "<>", "  <>  ", " "])
def test_is_null_sender(sender: str) -> None:
    assert is_null_sender(sender)


@pytest.mark.parametrize("sender", ["alice@clinic.example", "<alice@clinic.example>"])
def test_is_not_null_sender(sender: str) -> None:
    assert not is_null_sender(sender)


@pytest.mark.parametrize("sender", ["", "<>"])
def test_never_bounce_a_bounce(sender: str) -> None:
    with pytest.raises(ValueError, match="null sender"):
        _build(to_address=sender)


def test_angle_brackets_on_sender_are_accepted() -> None:
    msg = _parse(_build(to_address="<alice@clinic.example>"))
    assert msg["To"].addresses[0].addr_spec == "alice@clinic.example"


@pytest.mark.parametrize(
    "overrides",
    [
        {"failed": []},
        {"failed": [_failed(status="2.0.0")]},
        {"failed": [_failed(status="5.1")]},
        {"reporting_mta": "relay example"},
        {"to_address": "alice@clinic.example\r\nBcc: eve@evil.example"},
        {"to_address": "not-an-address"},
        {"from_address": "a@b, c@d"},
    ],
)
def test_invalid_input_is_rejected(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _build(**overrides)
