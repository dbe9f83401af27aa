"""Splitting a message into what stays outside the encryption and the MIME entity inside.

RFC 8551, 3.1 and 3.3: the MIME entity (its Content-* header fields and body)
is what gets protected; the message header fields (From, To, Subject, Date,
Message-ID, trace fields ...) stay outside. The message is taken apart as
bytes, without a MIME parser, so that the entity is exactly what was written
and a large message costs no more than a copy.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

_DEFAULT_TYPE = b"Content-Type: text/plain; charset=us-ascii\r\n"


@dataclass(frozen=True)
class SplitMessage:
    # Header fields that stay outside, each ending in CRLF, as written (folding kept).
    outer_headers: bytes
    # Content-* header fields, an empty line and the body.
    entity: bytes


def split_message(message: bytes) -> SplitMessage:
    """Take apart a CRLF message into the outer header fields and the MIME entity."""
    if message.startswith(b"\r\n"):
        header_block, body = b"", message[2:]
    else:
        end = message.find(b"\r\n\r\n")
        if end < 0:
            header_block, body = message.rstrip(b"\r\n") + b"\r\n", b""
        else:
            header_block, body = message[: end + 2], message[end + 4 :]
    outer: list[bytes] = []
    inner: list[bytes] = []
    has_type = False
    for field in _fields(header_block):
        name = field.split(b":", 1)[0].strip().lower()
        if name.startswith(b"content-"):
            inner.append(field)
            has_type = has_type or name == b"content-type"
        elif name != b"mime-version":  # the outer message declares its own
            outer.append(field)
    if not has_type:
        # RFC 2045's default, written out so the entity does not begin with an empty line.
        inner.insert(0, _DEFAULT_TYPE)
    return SplitMessage(b"".join(outer), b"".join(inner) + b"\r\n" + body)


def _fields(header_block: bytes) -> list[bytes]:
    """Header fields with their continuation lines, each ending in CRLF."""
    fields: list[bytes] = []
    for line in header_block.split(b"\r\n")[:-1]:
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields


def pkcs7_mime_message(outer_headers: bytes, smime_type: str, der: bytes) -> bytes:
    """The message to send: the outer header fields around an application/pkcs7-mime body."""
    return b"".join(
        (
            outer_headers,
            b"MIME-Version: 1.0\r\n",
            f"Content-Type: application/pkcs7-mime; smime-type={smime_type}; "
            "name=smime.p7m\r\n".encode(),
            b"Content-Disposition: attachment; filename=smime.p7m\r\n",
            b"Content-Transfer-Encoding: base64\r\n",
            b"\r\n",
            base64_lines(der),
        )
    )


def base64_lines(data: bytes) -> bytes:
    """Base64 in 76-character lines ending in CRLF (RFC 2045)."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")
