"""Messages made for a sender that does not write RFC 5322 itself (the send API):
a draft built into a MIME message, and the envelope of a message sent whole.

Both are pure. The bytes they give are checked and stored like any message
received over SMTP; a problem is a `DraftError` naming the field at fault and
never quoting its value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from gateway.mail.address_lists import address_list
from gateway.mail.addresses import AddressError, normalise
from gateway.mail.headers import HeaderSyntaxError, split_message, take_fields

FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]{1,76}$")  # RFC 5322 ftext
# Fields a draft's own `headers` may not set: phigate writes them from the draft,
# or they are the transport's (Received, DKIM), or they describe the MIME body.
RESERVED_FIELDS = frozenset(
    (
        "from",
        "sender",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "received",
        "return-path",
        "dkim-signature",
        "arc-seal",
        "arc-message-signature",
        "arc-authentication-results",
        "authentication-results",
    )
)


class DraftError(ValueError):
    """What is wrong with a draft or a message, and which field of the request it is."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # "type/subtype"
    content: bytes


@dataclass(frozen=True)
class Draft:
    sender: str  # the From: address, also the envelope sender
    sender_name: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # further fields, in order


def reserved(name: str) -> bool:
    lower = name.lower()
    return lower in RESERVED_FIELDS or lower.startswith(("content-", "resent-"))


def compose(draft: Draft, now: float, message_id_domain: str) -> bytes:
    """The draft as a MIME message with CRLF line endings, with a Message-ID and Date
    of ours. Bcc is the envelope's alone: it is never written into the message."""
    message = EmailMessage()
    message["From"] = Address(draft.sender_name or "", addr_spec=draft.sender)
    if draft.to:
        message["To"] = ", ".join(draft.to)
    if draft.cc:
        message["Cc"] = ", ".join(draft.cc)
    message["Subject"] = draft.subject
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = make_msgid(domain=message_id_domain)
    for index, (name, value) in enumerate(draft.headers):
        if not FIELD_NAME.match(name) or reserved(name):
            raise DraftError(
                f"headers.{name}" if FIELD_NAME.match(name) else f"headers[{index}]",
                "not a header field a message may be given here: use the request's own "
                "fields for From, To, Cc, Bcc, Subject and the body; Date, Message-ID, "
                "MIME and trace fields are written by phigate",
            )
        try:
            message[name] = value
        except (ValueError, TypeError):
            raise DraftError(f"headers.{name}", "not a valid header field value") from None
    _set_body(message, draft)
    for file in draft.attachments:
        maintype, _, subtype = file.content_type.partition("/")
        message.add_attachment(
            file.content, maintype=maintype, subtype=subtype, filename=file.filename
        )
    try:
        return message.as_bytes(policy=SMTP)
    except (ValueError, TypeError, UnicodeError):
        raise DraftError("headers", "the header fields cannot be encoded as a message") from None


def _set_body(message: EmailMessage, draft: Draft) -> None:
    if draft.text is not None:
        message.set_content(_lf(draft.text))
        if draft.html is not None:
            message.add_alternative(_lf(draft.html), subtype="html")
    elif draft.html is not None:
        message.set_content(_lf(draft.html), subtype="html")
    else:
        raise DraftError("text", "give `text`, `html` or both")


def _lf(text: str) -> str:
    """Line ends as Python's email package expects them; it writes CRLF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def with_crlf(content: bytes) -> bytes:
    """A message written with LF line ends (as files and most programs write it) in
    CRLF; one that has any CR is left as it is, for the content checks to judge."""
    return content if b"\r" in content else content.replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class RawEnvelope:
    sender: str
    recipients: tuple[str, ...]
    content: bytes  # without its Bcc fields


def envelope_of(content: bytes) -> RawEnvelope:
    """The envelope of a whole message, as `sendmail -t` takes it: the sender from
    Sender: (else the one From: address), the recipients from To:, Cc: and Bcc:,
    and the Bcc: fields removed so no recipient learns of another."""
    try:
        fields, _ = split_message(content.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
    except HeaderSyntaxError as exc:
        raise DraftError("message", f"{exc} (RFC 5322 section 2.2)") from None
    values: dict[bytes, list[str]] = {}
    for field in fields:
        values.setdefault(field.lower, []).append(field.value.decode("ascii", "replace"))
    authors = _addresses(values.get(b"sender") or values.get(b"from", []), "From")
    if len(authors) != 1:
        raise DraftError(
            "message", "the message needs one From: address (or a Sender: naming the one who sends)"
        )
    recipients = _addresses(
        [v for name in (b"to", b"cc", b"bcc") for v in values.get(name, [])], "To"
    )
    if not recipients:
        raise DraftError("message", "the message names no recipient in To:, Cc: or Bcc:")
    stripped, _ = take_fields(content, "Bcc")
    return RawEnvelope(authors[0], tuple(dict.fromkeys(recipients)), stripped)


def _addresses(values: Sequence[str], name: str) -> list[str]:
    found = []
    for _display, address in address_list(values):
        if not address:
            continue
        try:
            found.append(normalise(address))
        except AddressError as exc:
            raise DraftError("message", f"a {name}: address is not usable: {exc}") from None
    return found
