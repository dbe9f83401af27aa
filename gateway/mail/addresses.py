"""Envelope address validation and normalisation, done once at MAIL/RCPT.

What passes here is exactly what is stored, audited and sent: the domain is
lower-cased (IDNs to their ASCII form), the local part kept as written.
"""

from __future__ import annotations

import re
from functools import lru_cache

# The characters of an atom (RFC 5322 3.2.3); header fields' addresses use them too.
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = re.compile(rf"^{ATEXT}+(\.{ATEXT}+)*$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_LITERAL = re.compile(r"^\[(\d{1,3}(?:\.\d{1,3}){3})\]$")
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


class AddressError(ValueError):
    """Why an address is not acceptable, phrased for an SMTP reply."""


# Pure, and asked for the same few domains with every message.
@lru_cache(maxsize=4096)
def normalise_domain(domain: str) -> str:
    literal = _LITERAL.match(domain)
    if literal:
        if any(int(part) > 255 for part in literal.group(1).split(".")):
            raise AddressError(f"domain literal {domain} is not an IPv4 address")
        return domain
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise AddressError("domain is not a valid host name") from None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or len(labels) < 2 or not all(_LABEL.match(lbl) for lbl in labels):
        raise AddressError("domain is not a valid host name")
    return ascii_domain


def signing_domain(value: str) -> str:
    """A domain that signs (DKIM d=): lower case, IDNA A-labels, never an address literal.

    Raises AddressError with a message for a person, as DKIM keys and settings report it.
    """
    text = value.strip()
    try:
        if text.startswith("["):
            raise AddressError("an address literal cannot sign")
        return normalise_domain(text)
    except AddressError:
        raise AddressError(
            f"{value!r} is not a domain name (write it like example.org or bücher.example)"
        ) from None


def normalise(address: str) -> str:
    """Return the canonical form of a mailbox, or raise AddressError."""
    if len(address) > 320:
        raise AddressError("address is longer than 320 characters")
    if _SPACE_OR_CONTROL.search(address):
        raise AddressError("address contains spaces or control characters")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise AddressError("address must have the form local-part@domain")
    if len(local) > 64:
        raise AddressError("local part is longer than 64 characters")
    if not _LOCAL.match(local):
        raise AddressError("local part has characters not allowed in an address")
    return f"{local}@{normalise_domain(domain)}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]
