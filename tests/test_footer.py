"""The CAN-SPAM footer on marketing mail, read back with Python's email package."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from gateway.delivery.footer import add_footer

ADDRESS = "Riverside Clinic, 12 Elm Street, Springfield, IL 62701"
URL = "https://phigate.example/unsubscribe/abc123"


def build(*, html: str | None = None, plain: str | None = "Flu shots now.\n") -> bytes:
    message = EmailMessage()
    message["From"] = "news@clinic.example"
    message["To"] = "pat@home.example"
    message["Subject"] = "Flu clinic"
    if plain is not None:
        message.set_content(plain)
    if html is not None:
        if plain is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    message.add_attachment(
        b"%PDF-1.4 canary", maintype="application", subtype="pdf", filename="leaflet.pdf"
    )
    return message.as_bytes(policy=email.policy.SMTP)


def parts(content: bytes) -> dict[str, str]:
    parsed = email.message_from_bytes(content, policy=email.policy.default)
    found: dict[str, str] = {}
    for part in parsed.walk():
        kind = part.get_content_type()
        if kind.startswith("text/") and not part.is_attachment():
            found[kind] = part.get_content().replace("\r\n", "\n")
    return found


def test_plain_and_html_bodies_get_address_and_link() -> None:
    out = add_footer(build(html="<html><body><p>Flu shots</p></body></html>"), ADDRESS, URL)
    bodies = parts(out)
    assert bodies["text/plain"].endswith(f"{ADDRESS}\nUnsubscribe: {URL}\n")
    assert ADDRESS in bodies["text/html"] and f'href="{URL}"' in bodies["text/html"]
    assert bodies["text/html"].rstrip().endswith("</body></html>")
    parsed = email.message_from_bytes(out, policy=email.policy.default)
    attachment = next(p for p in parsed.walk() if p.get_filename() == "leaflet.pdf")
    assert attachment.get_content() == b"%PDF-1.4 canary"  # untouched
    assert parsed["Subject"] == "Flu clinic"


def test_mail_that_already_has_the_address_is_left_alone() -> None:
    original = build(plain=f"Flu shots.\n\n{ADDRESS}\n")
    assert add_footer(original, ADDRESS, URL) == original


def test_non_ascii_body_keeps_its_text() -> None:
    out = add_footer(build(plain="Vacunas contra la gripe: ¡ya!\n"), ADDRESS, URL)
    assert parts(out)["text/plain"].startswith("Vacunas contra la gripe: ¡ya!")


def test_mail_without_a_text_body_is_unchanged() -> None:
    message = EmailMessage()
    message["From"] = "news@clinic.example"
    message.add_attachment(b"x", maintype="application", subtype="pdf", filename="a.pdf")
    original = message.as_bytes(policy=email.policy.SMTP)
    assert add_footer(original, ADDRESS, URL) == original
