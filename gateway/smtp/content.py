"""What a message may carry at DATA, checked on the raw bytes before intake."""

from __future__ import annotations

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


def content_problem(content: bytes) -> str | None:
    """The refusal (a reply with an enhanced code) for content not to be relayed, or None."""
    crlf = content.count(b"\r\n")
    # A CR or LF outside CRLF is how SMTP smuggling hides a second message.
    if content.count(b"\r") != crlf or content.count(b"\n") != crlf:
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
