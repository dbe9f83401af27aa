"""Variable types, and the values a template may be given for them (pure).

A value is checked against its variable's type and becomes what the template
sees: text, a number, a truth value, or a list of them. A date is given as
YYYY-MM-DD and shown as written there, or in the variable's `format`. No
message here ever holds the value: a value may be PHI.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date

from gateway.mail.addresses import AddressError, normalise

SCALARS = ("string", "integer", "number", "boolean", "date", "email")
TYPES = (*SCALARS, "enum", "list")
MAX_STRING = 10_000  # characters, when a string variable sets no max_length
MAX_ITEMS = 100  # items of a list variable, when it sets no max_items


@dataclass(frozen=True)
class Variable:
    """One declared variable of a template."""

    name: str
    type: str  # one of TYPES
    required: bool = True
    default: object = None  # already checked; None: none
    phi: bool = False
    description: str = ""
    max_length: int = MAX_STRING  # string, and each string item of a list
    choices: tuple[str, ...] = ()  # enum: the values allowed
    items: str = "string"  # list: its items' type, one of SCALARS
    max_items: int = MAX_ITEMS  # list
    format: str | None = None  # date: strftime format, e.g. "%B %d, %Y"

    @property
    def shape(self) -> str:
        """The type in words, for listings and errors."""
        if self.type == "enum":
            return f"one of {', '.join(self.choices)}"
        if self.type == "list":
            return f"a list of {self.items}"
        return self.type


class BadValue(Exception):
    """A value of the wrong type; the message names the type wanted, never the value."""


_WANTED = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "date": "a date written YYYY-MM-DD",
    "email": "an email address (local@domain)",
}


def checked(variable: Variable, value: object) -> object:
    """What the template sees for `value`; BadValue if it is not of the variable's type."""
    if variable.type == "list":
        if not isinstance(value, list | tuple):
            raise BadValue(f"expected a list of {variable.items}, got {_kind(value)}")
        if len(value) > variable.max_items:
            raise BadValue(f"a list of at most {variable.max_items} items is allowed")
        return [_scalar(variable, variable.items, item) for item in value]
    if variable.type == "enum":
        if not isinstance(value, str) or value not in variable.choices:
            raise BadValue(f"expected one of {', '.join(variable.choices)}")
        return str.__str__(value)
    return _scalar(variable, variable.type, value)


def _scalar(variable: Variable, kind: str, value: object) -> object:
    wanted = _WANTED[kind]
    if kind == "boolean":
        if not isinstance(value, bool):
            raise BadValue(f"expected {wanted}, got {_kind(value)}")
        return value
    if kind in ("integer", "number"):
        whole = kind == "integer"
        if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
            raise BadValue(f"expected {wanted}, got {_kind(value)}")
        if not math.isfinite(value):
            raise BadValue(f"expected {wanted}, got an infinite or undefined number")
        return int(value) if whole else value
    if not isinstance(value, str):
        raise BadValue(f"expected {wanted}, got {_kind(value)}")
    text = str.__str__(value)  # never a subclass (markupsafe.Markup would skip escaping)
    if len(text) > variable.max_length:
        raise BadValue(f"text of at most {variable.max_length} characters is allowed")
    if kind == "date":
        try:
            day = date.fromisoformat(text) if len(text) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise BadValue(f"expected {wanted}, e.g. 2026-03-01")
        return day.strftime(variable.format) if variable.format else day.isoformat()
    if kind == "email":
        try:
            return normalise(text)
        except AddressError:
            raise BadValue(f"expected {wanted}") from None
    return text


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def from_text(variable: Variable, text: str) -> object:
    """A value typed on a command line (`--var name=text`), as its type reads it:
    `3`, `2.5`, `true`, a list as JSON (`["a","b"]`); BadValue if it does not read."""
    if variable.type == "list":
        try:
            items = json.loads(text)
        except ValueError:
            raise BadValue('write a list as JSON, e.g. ["first","second"]') from None
        if not isinstance(items, list):
            raise BadValue('write a list as JSON, e.g. ["first","second"]')
        return items
    return _scalar_from_text(variable.type, text)


def _scalar_from_text(kind: str, text: str) -> object:
    if kind == "boolean":
        if text not in ("true", "false"):
            raise BadValue("write true or false")
        return text == "true"
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise BadValue("write a whole number, e.g. 3") from None
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            raise BadValue("write a number, e.g. 2.5") from None
    return text
