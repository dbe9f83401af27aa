"""What a submitted message may carry, checked on the raw bytes before intake: its
envelope sender's domain, its line endings, NUL bytes, 8-bit header fields, and the
authors its From: and Sender: name.

The SMTP listener (at MAIL and DATA) and the send API ask the same functions, so
a message refused by one is refused by the other. Each answer is an SMTP reply
with an enhanced status code; the API turns it into an HTTP error.
"""

from __future__ import annotations

from collections.abc import Collection

from gateway.mail.addresses import domain_of
from gateway.mail.headers import AuthorError, HeaderSyntaxError, authors, header_fields
from gateway.mail.line_ends import crlf_only

BARE_LINE_ENDING = (
    "554 5.6.0 Message contains a bare CR or LF; lines must end in CRLF (RFC 5321 section 2.3.8)"
)
NUL_BYTE = (
    "554 5.6.0 Message contains a NUL byte, which mail may not carry "
    "(RFC 5322 section 2.2, RFC 6152): encode binary content (base64)"
)
EIGHT_BIT_HEADER = (
    "554 5.6.7 Message header contains non-ASCII bytes; this server does not offer "
    "SMTPUTF8 (RFC 6531), so encode them (RFC 2047)"
)


def sender_refusal(sender: str, who: str, domains: Collection[str]) -> str | None:
    """The refusal of a (normalised) envelope sender outside the `domains` that `who`
    (e.g. `principal "ehr"`) may send from, or None: never an open relay."""
    if domain_of(sender) in domains:
        return None
    return f"550 5.7.1 Sender not permitted for {who}"


def content_problem(content: bytes) -> str | None:
    """The refusal (a reply with an enhanced code) for content not to be relayed, or None."""
    # A CR or LF outside CRLF is how SMTP smuggling hides a second message.
    if not crlf_only(content):
        return BARE_LINE_ENDING
    if b"\0" in content:
        return NUL_BYTE
    # 8-bit bodies are fine (8BITMIME); 8-bit header fields need SMTPUTF8.
    if not _header_section(content).isascii():
        return EIGHT_BIT_HEADER
    return None


def _header_section(content: bytes) -> bytes:
    if content.startswith(b"\r\n"):
        return b""
    end = content.find(b"\r\n\r\n")
    return content if end < 0 else content[:end]


# A reply line stays well under the 512 octets of RFC 5321 4.5.3.1.5.
_LISTED_DOMAINS = 8


def _listed(domains: Collection[str]) -> str:
    shown = sorted(domains)
    more = len(shown) - _LISTED_DOMAINS
    text = ", ".join(shown[:_LISTED_DOMAINS])
    return f"{text} and {more} more" if more > 0 else text


def author_refusal(content: bytes, allowed: Collection[str]) -> str | None:
    """The SMTP reply refusing a message whose From: or Sender: names a domain
    outside `allowed` (or cannot be read); None when the authors are allowed.

    The reply names the field and, of its contents, only the offending domain.
    """
    try:
        fields = authors(header_fields(content))
    except HeaderSyntaxError as exc:
        return f"550 5.6.0 Malformed header: {exc} (RFC 5322 section 2.2)"
    except AuthorError as exc:
        return f"550 5.6.0 {exc}"
    for name, domains in fields:
        for domain in domains:
            if domain not in allowed:
                return (
                    f"550 5.7.1 {name}: header names domain {domain}, which this session may "
                    f"not send as; allowed: {_listed(allowed)}"
                )
    return None
