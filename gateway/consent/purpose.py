"""The purpose a message's consent is checked for: its category, and for marketing
the sub-purpose the sending system names in the purpose header."""

from __future__ import annotations

from collections.abc import Collection

MARKETING = "marketing"


class UnknownPurpose(ValueError):
    """The purpose header names no configured sub-purpose; phrased for an SMTP reply."""


def message_purpose(
    category: str, header: str | None, configured: Collection[str], header_name: str
) -> str:
    """`marketing/<sub>` when a marketing message names a configured sub-purpose, else
    the category.

    `configured`: the purposes the registry knows ("marketing/<sub>"). Any other
    value is refused (UnknownPurpose), and never kept: the header is the
    client's free text, and could carry anything.
    """
    if category != MARKETING or header is None or not header.strip():
        return category
    purpose = f"{MARKETING}/{' '.join(header.split()).lower()}"
    if purpose in configured:
        return purpose
    subs = sorted(p.removeprefix(MARKETING + "/") for p in configured if p != MARKETING)
    raise UnknownPurpose(
        f"{header_name} names a marketing purpose that is not configured; configured: "
        f"{', '.join(subs) or 'none'} (consent.purposes in phigate.yaml)"
    )
