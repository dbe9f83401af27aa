"""Validate hand-written YAML files against pydantic models, with located errors.

`gateway.strict_yaml` reads a file strictly; this module turns each pydantic
validation error into a `YamlError` that says where (file:line:column and key
path), what is wrong and how to fix it. Settings and policy files share it.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticUndefined

from gateway.strict_yaml import (
    KeyPath,
    YamlDocument,
    YamlError,
    describe_value,
    format_path,
    load_yaml,
)

__all__ = [
    "ModelErrors",
    "ModelSchema",
    "located_problem",
    "read_document",
    "read_text",
    "validate_document",
]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ModelSchema(Generic[M]):
    """A root model plus the hints its validators' messages deserve."""

    root: type[M]
    # (text found in a validator message, hint shown to the admin)
    value_hints: Sequence[tuple[str, str]] = field(default_factory=tuple)
    fallback_hint: str = "see the documentation of this setting"


def read_text(path: Path, kind: str = "file") -> str:
    """A hand-written file's text; YamlError if it cannot be read or is not UTF-8.

    `kind` names the file in messages, e.g. "settings file".
    """
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise YamlError(
            source,
            None,
            None,
            f"cannot read the {kind}: {exc.strerror or exc}",
            "check the path and that phigate may read it",
        ) from None
    try:
        # utf-8-sig: editors on Windows like to prepend a byte-order mark.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise YamlError(
            source, line, None, "the file is not valid UTF-8 text", "save the file as UTF-8"
        ) from None


def read_document(path: Path, kind: str = "file") -> YamlDocument:
    """Read and parse one file strictly; raise YamlError if it cannot be read or parsed."""
    return load_yaml(read_text(path, kind), str(path))


def validate_document(schema: ModelSchema[M], doc: YamlDocument, data: Any) -> M:
    """Validate `data` (taken from `doc`) against the schema's root model.

    Raises ModelErrors with every problem, sorted by position in the file.
    """
    try:
        return schema.root.model_validate(data)
    except ValidationError as exc:
        problems = [located_problem(schema, doc, error) for error in exc.errors(include_url=False)]
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise ModelErrors(problems) from None


def validate_text(
    schema: ModelSchema[M], text: str, source: str, kind: str, holds: str, start: str
) -> tuple[YamlDocument, M]:
    """A file of key: value settings (`kind`, e.g. "a template file"; `holds`: what
    its keys are, e.g. "sections"; `start`: how one begins), loaded and validated.

    Raises ModelErrors with every problem, a YAML syntax error included.
    """
    try:
        doc = load_yaml(text, source)
    except YamlError as exc:
        raise ModelErrors([exc]) from None
    if not isinstance(doc.data, dict):
        problem = doc.error(
            (),
            f"{kind} holds key: value {holds}, but this one holds {describe_value(doc.data)}",
            start,
        )
        raise ModelErrors([problem])
    return doc, validate_document(schema, doc, doc.data)


class ModelErrors(Exception):
    """Every problem found while validating one document."""

    def __init__(self, problems: Iterable[YamlError]) -> None:
        self.problems: list[YamlError] = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


def _existing_path(data: Any, loc: tuple[int | str, ...]) -> KeyPath:
    """The longest prefix of `loc` that exists in the data.

    The rest is either a key that is missing from the file or pydantic's own
    bookkeeping (such as union member names), neither of which has a position.
    """
    path: list[str | int] = []
    current = data
    for part in loc:
        in_dict = isinstance(current, dict) and isinstance(part, str) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if not (in_dict or in_list):
            break
        current = current[part]
        path.append(part)
    return tuple(path)


def _unwrap_optional(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        members = [arg for arg in get_args(tp) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return tp


def _written_keys(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the key written in the file (the alias where there is one)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _type_at(root: type[BaseModel], path: KeyPath) -> Any:
    """The declared type at `path` in the `root` model, or None if unknown."""
    tp: Any = root
    for part in path:
        tp = _unwrap_optional(tp)
        if get_origin(tp) is dict:  # any key of a mapping: its value type
            tp = get_args(tp)[1]
        elif isinstance(part, str):
            if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
                return None
            info = _written_keys(tp).get(part)
            if info is None:
                return None
            tp = info.annotation
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return None
    return _unwrap_optional(tp)


def _field_at(root: type[BaseModel], path: KeyPath) -> FieldInfo | None:
    if not path or not isinstance(path[-1], str):
        return None
    parent = _type_at(root, path[:-1])
    if isinstance(parent, type) and issubclass(parent, BaseModel):
        return _written_keys(parent).get(path[-1])
    return None


def _example(root: type[BaseModel], path: KeyPath, fallback: str) -> str:
    """The field's default, shown as it would be written in the file."""
    info = _field_at(root, path)
    if info is None:
        return fallback
    default = info.get_default(call_default_factory=True)
    if default is PydanticUndefined or default is None or isinstance(default, BaseModel):
        return fallback
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    if isinstance(default, int | float):
        return str(default)
    if isinstance(default, str) and default:
        return default
    return fallback


def _quoted_choices(choices: Iterable[Any]) -> str:
    return ", ".join(f'"{choice}"' for choice in choices)


def _closest(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


_NUMBER_TEXT = re.compile(r"\s*[-+]?[0-9][0-9_]*(\.[0-9]*)?\s*")


def _looks_numeric(value: Any) -> bool:
    return isinstance(value, str) and _NUMBER_TEXT.fullmatch(value) is not None


def _unknown_key(root: type[BaseModel], path: KeyPath) -> tuple[str, str]:
    key = str(path[-1])
    message = f'unknown key "{key}"'
    parent = _type_at(root, path[:-1])
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)):
        return message, "remove it"
    valid = list(_written_keys(parent))
    guess = _closest(key, valid)
    if guess is not None:
        return message, f'did you mean "{guess}"?'
    return message, f"remove it; the keys allowed here are {_quoted_choices(valid)}"


def _describe(
    schema: ModelSchema[Any], error: ErrorDetails, path: KeyPath, loc_path: KeyPath
) -> tuple[str, str]:
    """(message, hint) for one pydantic error."""
    root = schema.root
    kind = error["type"]
    value = error.get("input")
    got = describe_value(value)
    ctx = error.get("ctx") or {}
    empty_hint = "write a value, or delete the line to use the default"

    if kind == "extra_forbidden":
        return _unknown_key(root, path)
    if kind == "missing":
        key = str(loc_path[-1])
        return f'missing required key "{key}"', f'add "{key}: ..." here'
    if kind in ("int_type", "int_parsing", "int_from_float"):
        if _looks_numeric(value):
            return f"expected a whole number, got the text {got}", f"remove the quotes: {value}"
        example = _example(root, path, "8")
        return f"expected a whole number, got {got}", f"write a number such as {example}"
    if kind in ("float_type", "float_parsing"):
        if _looks_numeric(value):
            return f"expected a number, got the text {got}", f"remove the quotes: {value}"
        example = _example(root, path, "30")
        return f"expected a number, got {got}", f"write a number such as {example}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}", "write true or false, without quotes"
    if kind == "string_type":
        if value is None:
            return "expected text, got an empty value", empty_hint
        if isinstance(value, list | dict):
            return f"expected text, got {got}", "write a single value on the same line as the key"
        return f"expected text, got {got}", f'put the value in quotes: "{_plain(value)}"'
    if kind == "literal_error":
        choices = [str(arg) for arg in get_args(_type_at(root, path))] or [ctx.get("expected", "")]
        message = f"expected one of {_quoted_choices(choices)}, got {got}"
        guess = _closest(value, choices) if isinstance(value, str) else None
        if guess is not None:
            return message, f'did you mean "{guess}"?'
        return message, f"write one of {_quoted_choices(choices)}"
    if kind == "list_type":
        if value is None:
            return (
                "expected a list, got an empty value",
                "write [] for an empty list, or delete the line to use the default",
            )
        return (
            f"expected a list, got {got}",
            'write one item per line starting with "- ", or [a, b] on one line',
        )
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        key = format_path(path) or "the section"
        if value is None:
            return (
                "expected a section of settings, got an empty value",
                "indent its settings under it, or delete the line to use the defaults",
            )
        return (
            f"expected a section of key: value settings, got {got}",
            f'write its settings on the following lines, indented under "{key}:"',
        )
    bounds = {
        "greater_than": ("greater than", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    if kind in bounds:
        words, name = bounds[kind]
        limit = ctx.get(name)
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return (
            f"must be {words} {limit}, got {got}",
            f"use a value {words} {limit}, such as {_example(root, path, str(limit))}",
        )
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        items = "item" if least == 1 else "items"
        return (
            f"needs at least {least} {items}, got {ctx.get('actual_length', 0)}",
            f'add at least {least} {items} under this key, one per line starting with "- "',
        )

    if kind == "string_too_long":
        most = ctx.get("max_length")
        return f"is longer than {most} characters", f"shorten it to at most {most} characters"
    if kind == "string_too_short":
        return "must not be empty", "write a value here"
    if kind == "too_long":
        most = ctx.get("max_length")
        return f"allows at most {most} item(s)", f"remove items until at most {most} remain"
    if kind == "value_error":
        return _value_error(schema, str(error["msg"]).removeprefix("Value error, "))
    return str(error["msg"]), schema.fallback_hint


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _value_error(schema: ModelSchema[Any], message: str) -> tuple[str, str]:
    """A validator's message; its trailing "(write e.g. ...)" moves into a known hint."""
    for needle, hint in schema.value_hints:
        if needle in message:
            return re.sub(r"\s*\([^()]*\)$", "", message), hint
    return message, schema.fallback_hint


def located_problem(schema: ModelSchema[Any], doc: YamlDocument, error: ErrorDetails) -> YamlError:
    """One pydantic error, placed at its line and column and explained."""
    loc = tuple(error["loc"])
    path = _existing_path(doc.data, loc)
    kind = error["type"]
    # A missing key has no position: report it at its parent; for it and for
    # unknown keys point at the key itself rather than its value.
    loc_path: KeyPath = path + loc[len(path) : len(path) + 1] if kind == "missing" else path
    value = error.get("input")
    if kind == "value_error" and path == loc and isinstance(value, list):
        # A validator rejecting one item of a list names it; point at that item.
        msg = str(error["msg"])
        for index, item in enumerate(value):
            if isinstance(item, str) and repr(item) in msg:
                path = loc_path = (*path, index)
                break
    message, hint = _describe(schema, error, path, loc_path)
    scalar = isinstance(value, str | int | float | bool)
    at_key = kind in ("missing", "extra_forbidden") or not scalar
    mark = doc.key_mark(path) if at_key else doc.mark(path)
    return YamlError(doc.source, mark.line, mark.column, message, hint, format_path(loc_path))
