"""What a portal page shows of a message: headers, a safe body, the attachments.

Pure: bytes in, values out. HTML bodies are sanitized with nh3 (ammonia):
formatting tags only, no scripts, styles, frames, forms or event handlers,
links only to http(s) and mailto (with rel="noopener noreferrer"), images
only as data: URLs, so that reading a message loads nothing from elsewhere.
A message that cannot be parsed yields `Unreadable`, never an exception.
"""

from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import BytesParser

import nh3

_PARSER = BytesParser(policy=email.policy.default)
_MAX_NAME = 120
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")
_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li", "ol", "p", "pre",
    "q", "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "u", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "abbr": {"title"},
}
_LINK_SCHEMES = ("http:", "https:", "mailto:")
_IMAGE_PREFIX = "data:image/"


@dataclass(frozen=True)
class Attachment:
    index: int
    filename: str  # safe to show: no path, no control characters, bounded
    content_type: str
    size: int


@dataclass(frozen=True)
class Reading:
    subject: str
    sender: str
    date: str
    message_id: str | None
    text: str | None  # the body as plain text, or
    html: str | None  # the body as sanitized HTML
    attachments: tuple[Attachment, ...]


@dataclass(frozen=True)
class Unreadable:
    """The message cannot be shown (its MIME structure is broken)."""

    reason: str = "This message cannot be shown: its format is damaged."


@dataclass(frozen=True)
class Download:
    filename: str
    content_type: str
    content: bytes


def _keep_attribute(element: str, attribute: str, value: str) -> str | None:
    lowered = value.strip().lower()
    if element == "a" and attribute == "href":
        return value if lowered.startswith(_LINK_SCHEMES) else None
    if element == "img" and attribute == "src":
        return value if lowered.startswith(_IMAGE_PREFIX) else None
    return value


def sanitize(html: str) -> str:
    """HTML safe to put in a portal page: harmless formatting, nothing that runs or loads."""
    return nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        attribute_filter=_keep_attribute,
        url_schemes={"http", "https", "mailto", "data"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def safe_filename(name: str | None, index: int) -> str:
    """A name to show and to offer for saving: the last path component, printable, bounded."""
    cleaned = _UNSAFE_NAME.sub("_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    cleaned = cleaned.lstrip(".")[:_MAX_NAME]
    return cleaned or f"attachment-{index + 1}"


def _text_of(part: Message) -> str:
    """The part's text with plain newlines (stored messages have CRLF)."""
    return _decoded_text(part).replace("\r\n", "\n")


def _decoded_text(part: Message) -> str:
    try:
        content = part.get_content() if isinstance(part, EmailMessage) else None
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, ValueError):
        pass
    payload = part.get_payload(decode=True)
    raw = payload if isinstance(payload, bytes) else b""
    return raw.decode(part.get_content_charset() or "utf-8", errors="replace")


def _bytes_of(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload(0)
        return inner.as_bytes() if isinstance(inner, Message) else b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _leaves(message: Message) -> list[Message]:
    """Every part that is not a container, in order; an attached message counts as one."""
    if message.get_content_type() == "message/rfc822" or not message.is_multipart():
        return [message]
    parts: list[Message] = []
    payload = message.get_payload()
    for child in payload if isinstance(payload, list) else []:
        if isinstance(child, Message):
            parts.extend(_leaves(child))
    return parts


def _body_parts(message: EmailMessage) -> tuple[Message | None, Message | None]:
    """The message's HTML and plain text bodies (either may be None)."""
    html = message.get_body(preferencelist=("html",))
    plain = message.get_body(preferencelist=("plain",))
    return html, plain


def _attachment_parts(message: EmailMessage) -> list[Message]:
    html, plain = _body_parts(message)
    return [part for part in _leaves(message) if part is not html and part is not plain]


def _parse(content: bytes) -> EmailMessage:
    message = _PARSER.parsebytes(content)
    assert isinstance(message, EmailMessage)  # the default policy's message class
    return message


def _header(message: Message, name: str) -> str:
    value = message.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def read(content: bytes) -> Reading | Unreadable:
    """What a page shows of `content` (the message as stored)."""
    try:
        message = _parse(content)
        html, plain = _body_parts(message)
        attachments = tuple(
            Attachment(
                index,
                safe_filename(part.get_filename(), index),
                part.get_content_type(),
                len(_bytes_of(part)),
            )
            for index, part in enumerate(_attachment_parts(message))
        )
        return Reading(
            subject=_header(message, "Subject"),
            sender=_header(message, "From"),
            date=_header(message, "Date"),
            message_id=_header(message, "Message-ID") or None,
            text=_text_of(plain) if html is None and plain is not None else None,
            html=sanitize(_text_of(html)) if html is not None else None,
            attachments=attachments,
        )
    except Exception:  # any damage to the structure: say so, never raise to the page
        return Unreadable()


def attachment(content: bytes, index: int) -> Download | None:
    """The attachment numbered `index` in `read`'s list, or None if there is none."""
    try:
        parts = _attachment_parts(_parse(content))
        if not 0 <= index < len(parts):
            return None
        part = parts[index]
        return Download(
            safe_filename(part.get_filename(), index), part.get_content_type(), _bytes_of(part)
        )
    except Exception:  # a damaged message has no attachments to offer
        return None
