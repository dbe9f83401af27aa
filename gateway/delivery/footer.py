"""The CAN-SPAM footer: the organisation's postal address and an unsubscribe link,
added to marketing mail that does not already carry the address.

Only the first plain-text and the first HTML body part (not attachments) get
it; a message with neither (say, a lone PDF) is left as it is, since its
List-Unsubscribe header still offers the opt-out.
"""

from __future__ import annotations

import email.policy
import html
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser

_PARSER = BytesParser(policy=email.policy.SMTP)


def _body_parts(message: EmailMessage) -> dict[str, MIMEPart]:
    found: dict[str, MIMEPart] = {}
    for part in message.walk():
        kind = part.get_content_type()
        wanted = kind in ("text/plain", "text/html") and kind not in found
        if wanted and not part.is_attachment() and isinstance(part, MIMEPart):
            found[kind] = part
    return found


def add_footer(content: bytes, postal_address: str, unsubscribe_url: str) -> bytes:
    """`content` with the footer, or unchanged when a body already names the address."""
    message = _PARSER.parsebytes(content)
    assert isinstance(message, EmailMessage)
    parts = _body_parts(message)
    first_line = postal_address.strip().splitlines()[0] if postal_address.strip() else ""
    texts = {kind: part.get_content() for kind, part in parts.items()}
    if not parts or any(first_line and first_line in text for text in texts.values()):
        return content
    plain = f"\n\n--\n{postal_address.strip()}\nUnsubscribe: {unsubscribe_url}\n"
    lines = "<br>".join(html.escape(line) for line in postal_address.strip().splitlines())
    link = html.escape(unsubscribe_url, quote=True)
    rich = f'<hr><p style="font-size:small">{lines}<br><a href="{link}">Unsubscribe</a></p>'
    for kind, part in parts.items():
        text = texts[kind]
        if kind == "text/plain":
            updated = text.rstrip("\r\n") + plain
        else:
            closing = text.lower().rfind("</body>")
            updated = text[:closing] + rich + text[closing:] if closing >= 0 else text + rich
        charset = part.get_content_charset() or "utf-8"
        try:
            updated.encode(charset)
        except (LookupError, UnicodeEncodeError):
            charset = "utf-8"
        part.set_content(updated, subtype=kind.split("/")[1], charset=charset, cte=None)
    return message.as_bytes()
