"""RFC 3464 delivery status notifications that never carry message content.

A bounce is the classic way a relay leaks PHI: most MTAs attach the original
message or at least its headers (Subject, To, Cc ...).  The builder here only
accepts envelope metadata, so there is no code path by which content could end
up in a notification.  The original Message-ID is the one piece of message
metadata included, because it lets the sender's client thread the bounce.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage, Message, MIMEPart
from email.policy import SMTP, SMTPUTF8, EmailPolicy, compat32
from email.utils import format_datetime

__all__ = ["FailedRecipient", "build_dsn", "is_null_sender"]

SUBJECT = "Undelivered Mail Returned to Sender"
DISPLAY_NAME = "Mail Delivery System"

DIAGNOSTIC_MAX = 200
_LINE_WIDTH = 78
# Generous caps for values that come from our own queue; they only stop a
# corrupted record from producing a giant report.
_ID_MAX = 250
_ADDR_MAX = 512

# RFC 3463 status code; "failed" actions only use the 4 and 5 classes.
_STATUS_RE = re.compile(r"[45]\.\d{1,3}\.\d{1,3}")
_HOST_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_DIAG_TYPE_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]*;\s")
# C0/C1 controls, DEL and the Unicode line/paragraph separators: anything a
# parser might treat as a line break or that a terminal might interpret.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient the relay gave up on."""

    recipient: str  # the envelope recipient (original)
    status: str  # enhanced status code, e.g. "5.1.1" or "4.4.7"
    diagnostic: str  # reply text from the remote server, e.g. "smtp; 550 5.1.1 user unknown"
    remote_mta: str | None  # e.g. "mx.example.org", None if no server was reached
    last_attempt: datetime


def is_null_sender(sender: str) -> bool:
    """True for the null reverse-path; such messages must never be bounced (RFC 5321 §6.1)."""
    return sender.strip() in ("", "<>")


def build_dsn(
    *,
    reporting_mta: str,
    from_address: str,
    to_address: str,
    queue_id: str,
    original_message_id: str | None,
    arrival: datetime,
    failed: Sequence[FailedRecipient],
    now: datetime | None = None,
) -> bytes:
    """Return a CRLF-terminated multipart/report (delivery-status) message.

    ``to_address`` is the original envelope sender.  Naive datetimes are taken
    as UTC.  Raises ValueError for a null ``to_address``, an empty ``failed``
    list or malformed metadata (host names, status codes, addresses).
    """
    if is_null_sender(to_address):
        raise ValueError("refusing to build a DSN for the null sender")
    if not failed:
        raise ValueError("a DSN needs at least one failed recipient")
    if not _HOST_RE.fullmatch(reporting_mta):
        raise ValueError(f"invalid reporting MTA host name: {reporting_mta!r}")
    for rcpt in failed:
        if not _STATUS_RE.fullmatch(rcpt.status):
            raise ValueError(f"invalid status code for a failed recipient: {rcpt.status!r}")

    sender = _strip_angles(from_address)
    recipient = _strip_angles(to_address)
    # Header addresses must be UTF-8 when an SMTPUTF8 address is involved; the
    # delivery-status fields stay ASCII either way (RFC 6533 xtext below).
    policy: EmailPolicy[EmailMessage] = SMTP if (sender + recipient).isascii() else SMTPUTF8
    qid = _clean(queue_id, _ID_MAX) or "unknown"
    msgid = _normalise_msgid(original_message_id)
    sent = _aware(now if now is not None else datetime.now(UTC))
    arrived = _aware(arrival)

    report = EmailMessage(policy=policy)
    report["From"] = f"{DISPLAY_NAME} <{_mailbox(sender)}>"
    report["To"] = _mailbox(recipient)
    if len(report["From"].addresses) != 1 or len(report["To"].addresses) != 1:
        raise ValueError("from_address and to_address must each be a single mailbox")
    report["Date"] = format_datetime(sent)
    report["Message-ID"] = f"<{secrets.token_hex(16)}@{reporting_mta}>"
    report["Subject"] = SUBJECT
    report["Auto-Submitted"] = "auto-replied"
    if msgid is not None:
        report["In-Reply-To"] = msgid
        report["References"] = msgid
    report["MIME-Version"] = "1.0"
    report.add_header("Content-Type", "multipart/report", report_type="delivery-status")

    human = MIMEPart(policy=policy)
    human.set_content(_human_text(reporting_mta, qid, msgid, arrived, failed), subtype="plain")
    human["Content-Description"] = "Notification"

    status = MIMEPart(policy=policy)
    status["Content-Description"] = "Delivery report"
    status["Content-Type"] = "message/delivery-status"
    # A list payload of header-only parts is what the stdlib generator expects
    # for message/delivery-status; it writes them as blank-line separated groups.
    groups: list[Message[str, str] | str] = [_per_message_fields(reporting_mta, qid, arrived)]
    groups.extend(_per_recipient_fields(rcpt) for rcpt in failed)
    status.set_payload(groups)
    report.set_payload([human, status])

    # refold_source="none" makes the generator write the delivery-status field
    # values exactly as built (already sanitised and folded at spaces) instead
    # of re-parsing them, which would fold long tokens into RFC 2047
    # encoded-words that have no place in RFC 3464 fields.
    return report.as_bytes(policy=policy.clone(refold_source="none"))


def _fields(pairs: Sequence[tuple[str, str]]) -> Message:
    # compat32 stores values verbatim; every value here is already free of
    # control characters, so folding is the only transformation needed.
    group = Message(policy=compat32)
    for name, value in pairs:
        group[name] = _fold(name, value)
    return group


def _per_message_fields(reporting_mta: str, queue_id: str, arrival: datetime) -> Message:
    return _fields(
        [
            ("Reporting-MTA", f"dns; {reporting_mta}"),
            ("X-Phigate-Queue-ID", queue_id),
            ("Arrival-Date", format_datetime(arrival)),
        ]
    )


def _per_recipient_fields(rcpt: FailedRecipient) -> Message:
    pairs = [
        ("Final-Recipient", _typed_address(rcpt.recipient)),
        ("Action", "failed"),
        ("Status", rcpt.status),
    ]
    remote = _remote_host(rcpt.remote_mta)
    if remote:
        pairs.append(("Remote-MTA", f"dns; {remote}"))
    diagnostic = _diagnostic_code(rcpt.diagnostic)
    if diagnostic:
        pairs.append(("Diagnostic-Code", diagnostic))
    pairs.append(("Last-Attempt-Date", format_datetime(_aware(rcpt.last_attempt))))
    return _fields(pairs)


def _fold(name: str, value: str) -> str:
    """Fold at spaces so lines stay near 78 characters (continuations start with a space)."""
    lines: list[str] = []
    current = ""
    budget = _LINE_WIDTH - len(name) - 2
    for word in value.split(" "):
        if current and len(current) + 1 + len(word) > budget:
            lines.append(current)
            current = word
            budget = _LINE_WIDTH - 1
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return "\n ".join(lines)


def _human_text(
    reporting_mta: str,
    queue_id: str,
    msgid: str | None,
    arrival: datetime,
    failed: Sequence[FailedRecipient],
) -> str:
    lines = [
        f"This is the mail system at host {reporting_mta}.",
        "",
        "Your message could not be delivered to one or more recipients.",
        "For privacy reasons the original message content is not included",
        "in this report; only delivery information is shown below.",
        "",
        f"Queue ID: {queue_id}",
    ]
    if msgid is not None:
        lines.append(f"Message-ID: {msgid}")
    lines.append(f"Received: {format_datetime(arrival)}")
    for rcpt in failed:
        lines += [
            "",
            f"Recipient: {_clean(_strip_angles(rcpt.recipient), _ADDR_MAX)}",
            f"Status: {rcpt.status}",
            f"Reason: {_diagnostic_code(rcpt.diagnostic) or 'no further details'}",
        ]
        remote = _remote_host(rcpt.remote_mta)
        if remote:
            lines.append(f"Remote server: {remote}")
    return "\n".join(lines) + "\n"


def _clean(text: str, limit: int) -> str:
    """Make text safe for one header line: no controls, no encoded-words, capped."""
    text = _CONTROL_RE.sub(" ", text)
    # The header registry decodes RFC 2047 encoded-words, so "=?utf-8?q?=0D=0A?="
    # would turn back into CR/LF and inject headers; break the syntax up.
    text = text.replace("=?", "= ?")
    return _SPACES_RE.sub(" ", text).strip()[:limit].rstrip()


def _diagnostic_code(diagnostic: str) -> str:
    text = _clean(diagnostic, DIAGNOSTIC_MAX)
    # Delivery-status fields are US-ASCII (RFC 3464 §2.1.2).
    text = text.encode("ascii", "replace").decode("ascii")
    if not text or _DIAG_TYPE_RE.match(text):
        return text
    # RFC 3464 wants "diagnostic-type; text": an SMTP reply code means the
    # text came from the remote server, anything else is our own reason.
    prefix = "smtp; " if text[:3].isdigit() else "X-Phigate; "
    return (prefix + text)[:DIAGNOSTIC_MAX].rstrip()


def _remote_host(remote_mta: str | None) -> str | None:
    if not remote_mta:
        return None
    host = _clean(remote_mta, 255)
    return host if _HOST_RE.fullmatch(host) else None


def _typed_address(address: str) -> str:
    addr = _clean(_strip_angles(address), _ADDR_MAX)
    if addr.isascii():
        return f"rfc822; {addr}"
    # RFC 6533 §3: internationalized addresses use the utf-8 type with
    # non-ASCII characters written as \x{HEX} so the field stays ASCII.
    return "utf-8; " + "".join(_xtext_char(ch) for ch in addr)


def _xtext_char(ch: str) -> str:
    if "!" <= ch <= "~" and ch not in "+=\\":
        return ch
    return f"\\x{{{ord(ch):02X}}}"


def _mailbox(addr_spec: str) -> str:
    # Reject rather than repair: a DSN to a mangled address would go to the
    # wrong party.  "=?" is refused because header parsing would decode it.
    if (
        "@" not in addr_spec
        or len(addr_spec) > _ADDR_MAX
        or _CONTROL_RE.search(addr_spec)
        or any(ch in addr_spec for ch in "<>")
        or "=?" in addr_spec
    ):
        raise ValueError(f"invalid address: {addr_spec!r}")
    return addr_spec


def _strip_angles(address: str) -> str:
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        return address[1:-1].strip()
    return address


def _normalise_msgid(msgid: str | None) -> str | None:
    if msgid is None:
        return None
    text = _clean(msgid, _ID_MAX).encode("ascii", "replace").decode("ascii")
    if not text.startswith("<"):
        text = f"<{text}>"
    # Anything that does not look like one msg-id token is dropped rather than
    # repaired: threading is a convenience, not worth a malformed header.
    if re.fullmatch(r"<[^<>\s]+>", text) is None:
        return None
    return text


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
