"""A recipient's reply from the portal, as a message to the original sender.

Composing is pure; submitting is a `ReplySubmitter`'s job (the composition
root hands replies to intake, so they are inspected and policy-checked like
any mail). The reply comes from the portal's address, names the recipient in
its display name and Reply-To, and threads under the original message.
"""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from typing import Protocol

from gateway.mail.addresses import domain_of
from gateway.store.portal import Copy

_SUBJECT_MAX = 200


@dataclass(frozen=True)
class ReplyFile:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class ReplyResult:
    """What the pipeline answered: an SMTP code, its text and the reply's queue id on 250."""

    code: int
    text: str
    queue_id: str | None


class ReplySubmitter(Protocol):
    async def submit(self, copy: Copy, client_ip: str, content: bytes) -> ReplyResult: ...


def _subject(original: str) -> str:
    subject = " ".join(original.split())
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}" if subject else "Re: your message"
    return subject[:_SUBJECT_MAX]


def _type_of(file: ReplyFile) -> tuple[str, str]:
    declared = file.content_type.strip().lower()
    if "/" not in declared or declared == "application/octet-stream":
        declared = mimetypes.guess_type(file.filename)[0] or "application/octet-stream"
    maintype, _, subtype = declared.partition("/")
    if maintype in ("multipart", "message") or not subtype:  # containers are not files
        return "application", "octet-stream"
    return maintype, subtype


def compose_reply(
    *,
    copy: Copy,
    organisation: str,
    portal_address: str,
    original_subject: str,
    original_message_id: str | None,
    text: str,
    files: Sequence[ReplyFile],
    now: float | None = None,
) -> bytes:
    """The reply as RFC 5322 bytes with CRLF line endings."""
    message = EmailMessage()
    message["From"] = Address(
        f"{copy.recipient} via {organisation} portal", addr_spec=portal_address
    )
    message["To"] = copy.sender
    message["Reply-To"] = copy.recipient
    message["Subject"] = _subject(original_subject)
    message["Date"] = formatdate(time.time() if now is None else now, usegmt=True)
    message["Message-ID"] = make_msgid(domain=domain_of(portal_address) or None)
    if original_message_id:
        message["In-Reply-To"] = original_message_id
        message["References"] = original_message_id
    message.set_content(text.replace("\r\n", "\n") or "(no text)")
    for file in files:
        maintype, subtype = _type_of(file)
        message.add_attachment(
            file.content, maintype=maintype, subtype=subtype, filename=file.filename
        )
    return message.as_bytes(policy=SMTP)
