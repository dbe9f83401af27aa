"""The addresses of header fields (From, To, Cc), as email.utils.getaddresses gives them.

getaddresses walks a field character by character in Python: about 15 us for
`Name <local@domain>`, and several fields of every message are read (the
author for the policy, the display names for inspection). Fields in the
common forms (addresses, `<address>`, `Name <address>`, `"Name" <address>`,
separated by commas) are matched by one regular expression instead, with the
same result; anything else (comments, groups, quoted local parts, unusual
white space) goes to getaddresses (tests/test_address_lists.py compares the two).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import getaddresses

from gateway.mail.addresses import ATEXT

_ADDRESS = rf"{ATEXT}+(?:\.{ATEXT}+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
# A display name of words (atext and dots) with single spaces between them, or quoted
# text without quotes, backslashes or line ends.
_WORD = rf"(?:{ATEXT}|\.)+"
_NAME = rf'(?:{_WORD}(?: {_WORD})*|"[^"\\\r\n]*")'
_ITEM = rf" ?(?:(?P<bare>{_ADDRESS})|(?P<name>{_NAME})? ?<(?P<routed>{_ADDRESS})>) ?"
_ITEM_RE = re.compile(_ITEM)
_UNNAMED = re.sub(r"\?P<\w+>", "?:", _ITEM)
_LIST_RE = re.compile(rf"{_UNNAMED}(?:,{_UNNAMED})*")


def address_list(values: Iterable[object]) -> list[tuple[str, str]]:
    """(display name, address) for each address of the field values, in order."""
    texts = [str(value) for value in values]
    found: list[tuple[str, str]] = []
    for text in texts:
        if _LIST_RE.fullmatch(text) is None:
            return getaddresses(texts)
        for item in _ITEM_RE.finditer(text):
            name = item["name"] or ""
            found.append(
                (name[1:-1] if name.startswith('"') else name, item["bare"] or item["routed"])
            )
    return found
