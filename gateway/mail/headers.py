"""Header fields of a message as it is sent, and the author domains they name.

The listener (refusing at DATA) and the DKIM signer (choosing d=) read the
header with this one splitter and this one address parser, so no message can
look like one author to the check and like another to the signer.

A receiver's DMARC check aligns the DKIM domain with the From: header, so the
domains of every From: address, and of Sender:, must be ones the sending
principal (or relay network) may use: otherwise any client could have mail
signed, and DMARC-aligned, as any domain phigate holds a key for.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.errors import ObsoleteHeaderDefect
from email.headerregistry import AddressHeader, HeaderRegistry

from gateway.mail.addresses import AddressError, normalise_domain

_CRLF = b"\r\n"
_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")  # RFC 5322 ftext
# Longer author fields are refused unparsed: no real From: comes near it, and
# the address parser's time grows with the value.
_MAX_AUTHOR_CHARS = 4096
_REGISTRY = HeaderRegistry()
# The common shapes, `addr` and `Display Name <addr>` (a phrase of atext words
# or one quoted string), read without the RFC 5322 parser, which costs a
# quarter of a millisecond per field; anything else goes to the parser.
_ADDR = r"[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
_PHRASE = r"(?:\"[^\"\\]*\"[ \t]*|[A-Za-z0-9!#$%&'*+/=?^_`{|}~. \t-]*)"
_SIMPLE_MAILBOX = re.compile(rf"[ \t]*(?:{_ADDR}|{_PHRASE}<{_ADDR}>)[ \t]*")


class HeaderSyntaxError(ValueError):
    """The header is not a sequence of fields; the text names the line, never its content."""


class AuthorError(ValueError):
    """From: or Sender: cannot be read as addresses; phrased for an SMTP reply."""


@dataclass(frozen=True)
class HeaderField:
    lower: bytes  # the name in lower case: relaxed canonicalisation and matching use it
    value: bytes  # after the colon, folding kept, without the final CRLF


def split_at(message: bytes) -> tuple[list[HeaderField], int]:
    """The header fields of a CRLF message and where its body begins (its length when
    it has none), or HeaderSyntaxError. The body is not copied (DATA may be megabytes)."""
    if message.startswith(_CRLF):
        return [], 2
    end = message.find(b"\r\n\r\n")
    return (_fields(message[:-2]), len(message)) if end == -1 else (_fields(message[:end]), end + 4)


def split_message(message: bytes) -> tuple[list[HeaderField], bytes]:
    """The header fields and the body of a CRLF message, or HeaderSyntaxError."""
    fields, body_at = split_at(message)
    return fields, message[body_at:]


def header_fields(message: bytes) -> list[HeaderField]:
    """The header fields of a CRLF message, or HeaderSyntaxError (its body not copied)."""
    return split_at(message)[0]


@functools.cache
def _named_field(name: str) -> re.Pattern[bytes]:
    # A field starts a line (not a folded continuation, which begins with white
    # space) and runs over its continuation lines up to and including its CRLF.
    return re.compile(
        rb"(?:\A|(?<=\r\n))" + re.escape(name.encode("ascii")) + rb"[ \t]*:"
        rb"((?:[^\r\n]|\r\n[ \t])*)(?:\r\n|\Z)",
        re.IGNORECASE,
    )


def take_fields(message: bytes, name: str) -> tuple[bytes, tuple[bytes, ...]]:
    """`message` without its header fields called `name` (any case, folded ones
    whole), and their values as written; every other byte is kept as it was.

    One scan of the header block decides: a message without such a field is
    returned as it is, uncopied, and the body is never read.
    """
    if message.startswith(_CRLF):
        return message, ()
    end = message.find(b"\r\n\r\n")
    header_end = len(message) if end == -1 else end + 2
    # The pattern is tried at every octet of the header; most messages do not hold the
    # name at all, which a search of the lower-cased header answers ten times faster.
    if name.lower().encode("ascii") not in message[:header_end].lower():
        return message, ()
    found = list(_named_field(name).finditer(message, 0, header_end))
    if not found:
        return message, ()
    kept = []
    start = 0
    for match in found:
        kept.append(message[start : match.start()])
        start = match.end()
    kept.append(message[start:])
    return b"".join(kept), tuple(match.group(1) for match in found)


def _fields(block: bytes) -> list[HeaderField]:
    fields: list[HeaderField] = []
    for number, line in enumerate(block.split(_CRLF) if block else [], 1):
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise HeaderSyntaxError("the message's header begins with white space")
            last = fields[-1]
            fields[-1] = HeaderField(last.lower, last.value + _CRLF + line)
            continue
        name, colon, value = line.partition(b":")
        name = name.rstrip(b" \t")
        if not colon or not _FIELD_NAME.fullmatch(name):
            raise HeaderSyntaxError(f"line {number} of the message's header is not a field")
        fields.append(HeaderField(name.lower(), value))
    return fields


def address_domains(value: bytes, name: str) -> tuple[str, ...]:
    """The domain of every address in one address-list field value, normalised.

    Strict where readers could disagree: anything the RFC 5322 parser had to
    guess at (an unquoted "a@x <b@y>", a missing ">", an address without a
    domain) is an AuthorError rather than a best guess.
    """
    if len(value) > _MAX_AUTHOR_CHARS:
        raise AuthorError(f"{name}: header is longer than {_MAX_AUTHOR_CHARS} characters")
    try:
        text = value.replace(_CRLF, b"").decode("utf-8")
        simple = _SIMPLE_MAILBOX.fullmatch(text)
        if simple:
            return (normalise_domain(simple.group(1) or simple.group(2)),)
        parsed = _REGISTRY(name, text)
    except AddressError:
        raise AuthorError(f"{name}: header holds an address with an invalid domain") from None
    except Exception:  # undecodable bytes, or input deep enough to exhaust the parser
        raise AuthorError(f"{name}: header cannot be read as addresses") from None
    assert isinstance(parsed, AddressHeader)
    if any(not isinstance(defect, ObsoleteHeaderDefect) for defect in parsed.defects):
        raise AuthorError(f"{name}: header cannot be read as addresses (RFC 5322 section 3.4)")
    domains = []
    for address in parsed.addresses:
        if not address.username or not address.domain:
            raise AuthorError(f"{name}: header holds an address without a domain")
        try:
            domains.append(normalise_domain(address.domain))
        except AddressError:
            raise AuthorError(f"{name}: header holds an address with an invalid domain") from None
    if not domains:
        raise AuthorError(f"{name}: header names no address")
    return tuple(domains)


def from_domains(fields: Sequence[HeaderField]) -> tuple[str, ...] | None:
    """The domains of the From: addresses, in order (None: no From: field)."""
    values = [f.value for f in fields if f.lower == b"from"]
    if not values:
        return None
    return tuple(d for value in values for d in address_domains(value, "From"))


def authors(fields: Sequence[HeaderField]) -> list[tuple[str, tuple[str, ...]]]:
    """(field name, its domains) for the one From: and the Sender: if any, or AuthorError."""
    found: dict[bytes, list[bytes]] = {b"from": [], b"sender": []}
    for f in fields:
        if f.lower in found:
            found[f.lower].append(f.value)
    if len(found[b"from"]) != 1:
        raise AuthorError(
            f"message has {len(found[b'from'])} From: header fields; exactly one is required "
            "(RFC 5322 section 3.6)"
        )
    authors = [("From", address_domains(found[b"from"][0], "From"))]
    if found[b"sender"]:
        sender = [address_domains(value, "Sender") for value in found[b"sender"]]
        if len(sender) != 1 or len(sender[0]) != 1:
            raise AuthorError("Sender: must be one field naming one address (RFC 5322 3.6.2)")
        authors.append(("Sender", sender[0]))
    return authors


def author_domains(domains: Sequence[str], from_domains: Sequence[str]) -> tuple[str, ...]:
    """What From: and Sender: may name (and DKIM may sign as): the envelope sender
    domains of a principal or relay network, and its extra From domains."""
    return tuple(dict.fromkeys([*domains, *from_domains]))
