"""The purpose a message's consent is checked for: its category, and for marketing
the sub-purpose the sending system names in the purpose header."""

from __future__ import annotations

import re

MARKETING = "marketing"
_SUB_PURPOSE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def message_purpose(category: str, header: str | None) -> str:
    """`marketing/<sub>` when a marketing message names a sub-purpose, else the category.

    A value that is not a well-formed sub-purpose name is kept as written (lower-case,
    at most 64 characters): no authorization names it, so a policy that requires one
    refuses the message rather than reading it as plain marketing.
    """
    if category != MARKETING or header is None or not header.strip():
        return category
    sub = " ".join(header.split()).lower()
    if not _SUB_PURPOSE.fullmatch(sub):
        sub = re.sub(r"[^a-z0-9-]", "-", sub)[:56] + "-invalid"  # fits jobs.purpose
    return f"{MARKETING}/{sub}"
