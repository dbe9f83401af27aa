"""Load phigate.yaml into `Settings`, reporting every problem with file:line:column.

Validation itself is pydantic's (`gateway.config`); this module reads the file
strictly (`gateway.strict_yaml`), turns each pydantic error into a message an
admin can act on (where, what is wrong, how to fix it), and applies the CLI's
quick overrides (--data-dir, --listen, --deliver).
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticUndefined

from gateway.config import DeliveryConfig, ListenerConfig, Settings, parse_host_port
from gateway.strict_yaml import (
    KeyPath,
    YamlDocument,
    YamlError,
    describe_value,
    format_path,
    load_yaml,
)

__all__ = ["SettingsError", "apply_overrides", "load_settings", "template_text"]

TEMPLATE_NAME = "phigate.yaml"


class SettingsError(Exception):
    """All problems found in a settings file or in the CLI overrides."""

    def __init__(self, problems: Iterable[YamlError]) -> None:
        self.problems: list[YamlError] = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


def template_text() -> str:
    """The commented production settings file that `phigate init` writes."""
    return (resources.files("gateway") / "templates" / TEMPLATE_NAME).read_text(encoding="utf-8")


def load_settings(path: Path | None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Load settings from `path` (None: the embedded defaults), then apply `overrides`.

    Raises SettingsError listing every problem found.
    """
    settings = Settings() if path is None else _load_file(Path(path))
    if overrides:
        settings = apply_overrides(settings, overrides)
    return settings


def _load_file(path: Path) -> Settings:
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SettingsError(
            [
                YamlError(
                    source,
                    None,
                    None,
                    f"cannot read the settings file: {exc.strerror or exc}",
                    "check the path and that phigate may read it",
                )
            ]
        ) from None
    try:
        # utf-8-sig: editors on Windows like to prepend a byte-order mark.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SettingsError(
            [
                YamlError(
                    source,
                    line,
                    None,
                    "the file is not valid UTF-8 text",
                    "save the file as UTF-8",
                )
            ]
        ) from None
    try:
        doc = load_yaml(text, source)
    except YamlError as exc:
        raise SettingsError([exc]) from None

    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        raise SettingsError(
            [
                doc.error(
                    (),
                    f"the file must hold key: value settings, but it holds {describe_value(data)}",
                    'start from the template written by "phigate init", '
                    'e.g. "hostname: mail.example.org"',
                )
            ]
        )
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(doc, error) for error in exc.errors(include_url=False)]
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise SettingsError(problems) from None

    # Paths in a file are relative to the file, not to wherever phigate was
    # started from; otherwise `phigate serve -c /etc/phigate/phigate.yaml`
    # would put its data in the current directory.
    data_dir = Path(settings.data_dir).expanduser()
    if not data_dir.is_absolute():
        data_dir = path.parent / data_dir
    return settings.model_copy(update={"data_dir": os.path.abspath(data_dir)})


# --- pydantic errors -> located problems ------------------------------------


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


def _type_at(path: KeyPath) -> Any:
    """The declared type at `path` in the Settings model, or None if unknown."""
    tp: Any = Settings
    for part in path:
        tp = _unwrap_optional(tp)
        if isinstance(part, str):
            if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
                return None
            info = tp.model_fields.get(part)
            if info is None:
                return None
            tp = info.annotation
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return None
    return _unwrap_optional(tp)


def _field_at(path: KeyPath) -> FieldInfo | None:
    if not path or not isinstance(path[-1], str):
        return None
    parent = _type_at(path[:-1])
    if isinstance(parent, type) and issubclass(parent, BaseModel):
        return parent.model_fields.get(path[-1])
    return None


def _example(path: KeyPath, fallback: str) -> str:
    """The field's default, shown as it would be written in the file."""
    info = _field_at(path)
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


def _unknown_key(path: KeyPath) -> tuple[str, str]:
    key = str(path[-1])
    message = f'unknown key "{key}"'
    parent = _type_at(path[:-1])
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)):
        return message, "remove it"
    valid = list(parent.model_fields)
    guess = _closest(key, valid)
    if guess is not None:
        return message, f'did you mean "{guess}"?'
    return message, f"remove it; the keys allowed here are {_quoted_choices(valid)}"


def _describe(error: ErrorDetails, path: KeyPath, loc_path: KeyPath) -> tuple[str, str]:
    """(message, hint) for one pydantic error."""
    kind = error["type"]
    value = error.get("input")
    got = describe_value(value)
    ctx = error.get("ctx") or {}
    empty_hint = "write a value, or delete the line to use the default"

    if kind == "extra_forbidden":
        return _unknown_key(path)
    if kind == "missing":
        key = str(loc_path[-1])
        return f'missing required key "{key}"', f'add "{key}: ..." here'
    if kind in ("int_type", "int_parsing", "int_from_float"):
        if _looks_numeric(value):
            return f"expected a whole number, got the text {got}", f"remove the quotes: {value}"
        example = _example(path, "8")
        return f"expected a whole number, got {got}", f"write a number such as {example}"
    if kind in ("float_type", "float_parsing"):
        if _looks_numeric(value):
            return f"expected a number, got the text {got}", f"remove the quotes: {value}"
        example = _example(path, "30")
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
        choices = [str(arg) for arg in get_args(_type_at(path))] or [ctx.get("expected", "")]
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
            f"use a value {words} {limit}, such as {_example(path, str(limit))}",
        )
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        items = "item" if least == 1 else "items"
        return (
            f"needs at least {least} {items}, got {ctx.get('actual_length', 0)}",
            f'add at least {least} {items} under this key, one per line starting with "- "',
        )

    if kind == "too_long":
        most = ctx.get("max_length")
        return f"allows at most {most} item(s)", f"remove items until at most {most} remain"
    if kind == "value_error":
        return _value_error(str(error["msg"]).removeprefix("Value error, "))
    return str(error["msg"]), "see the comment for this setting in the template (phigate init)"


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Hints for the messages raised by validators in gateway.config. The trailing
# "(write e.g. ...)" of such a message moves into the hint when one matches.
_VALUE_HINTS: list[tuple[str, str]] = [
    ("is not HOST:PORT", "write HOST:PORT, e.g. 127.0.0.1:2525 or [::1]:2525"),
    ("is not a network", "write a network in CIDR form, e.g. 10.20.0.0/16 or 192.168.1.7/32"),
    ("listener names must be unique", 'give each listener its own "name"'),
    ("at least one listener", 'add a listener, e.g. "- address: 127.0.0.1:2525"'),
    ("mode smarthost needs", "add e.g. smarthost: mail.example.org:587 under delivery"),
    ("retry_schedule needs", "list seconds between attempts, e.g. [60, 300, 900]"),
]


def _value_error(message: str) -> tuple[str, str]:
    for needle, hint in _VALUE_HINTS:
        if needle in message:
            return re.sub(r"\s*\([^()]*\)$", "", message), hint
    return message, "see the comment for this setting in the template (phigate init)"


def _problem(doc: YamlDocument, error: ErrorDetails) -> YamlError:
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
    message, hint = _describe(error, path, loc_path)
    scalar = isinstance(value, str | int | float | bool)
    at_key = kind in ("missing", "extra_forbidden") or not scalar
    mark = doc.key_mark(path) if at_key else doc.mark(path)
    return YamlError(doc.source, mark.line, mark.column, message, hint, format_path(loc_path))


# --- CLI overrides -----------------------------------------------------------


def _flag_error(flag: str, message: str, hint: str) -> YamlError:
    return YamlError(flag, None, None, message, hint)


def apply_overrides(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    """Apply the CLI's quick overrides; None values mean "not given".

    Keys: `data_dir` (str, relative to the current directory), `listen`
    (list of "HOST:PORT"; replaces the listeners, each keeping the first
    configured listener's other settings, named listen1, listen2, ...),
    `deliver` ("sandbox", "mx" or "smarthost://HOST:PORT").
    Raises SettingsError naming the flag for bad values and ValueError for
    an unknown key (a programming error, not a user one).
    """
    unknown = set(overrides) - {"data_dir", "listen", "deliver"}
    if unknown:
        raise ValueError(f"unknown settings overrides: {sorted(unknown)}")
    problems: list[YamlError] = []
    update: dict[str, Any] = {}

    data_dir = overrides.get("data_dir")
    if data_dir is not None:
        if not isinstance(data_dir, str | os.PathLike) or not str(data_dir).strip():
            problems.append(
                _flag_error(
                    "--data-dir",
                    "needs a directory",
                    "write e.g. --data-dir /var/lib/phigate",
                )
            )
        else:
            update["data_dir"] = os.path.abspath(Path(data_dir).expanduser())

    listen = overrides.get("listen")
    if listen:
        listeners = _listeners(settings, listen, problems)
        if listeners:
            update["listeners"] = listeners

    deliver = overrides.get("deliver")
    if deliver is not None:
        delivery = _delivery(settings, deliver, problems)
        if delivery is not None:
            update["delivery"] = delivery

    if problems:
        raise SettingsError(problems)
    if not update:
        return settings
    try:
        return Settings.model_validate({**settings.model_dump(), **update})
    except ValidationError as exc:
        raise SettingsError(
            _flag_error("overrides", str(error["msg"]), "check the command-line flags")
            for error in exc.errors(include_url=False)
        ) from None


def _listeners(settings: Settings, listen: Any, problems: list[YamlError]) -> list[ListenerConfig]:
    values = [listen] if isinstance(listen, str) else list(listen)
    template = settings.listeners[0].model_dump()
    result: list[ListenerConfig] = []
    seen: set[str] = set()
    for index, value in enumerate(values, start=1):
        try:
            if not isinstance(value, str):
                raise ValueError(f"{value!r} is not HOST:PORT")
            parse_host_port(value)
        except ValueError as exc:
            problems.append(
                _flag_error(
                    "--listen",
                    str(exc).split(" (")[0],
                    "write HOST:PORT, e.g. --listen 127.0.0.1:2525 or --listen [::1]:2525",
                )
            )
            continue
        if value in seen:
            problems.append(
                _flag_error(
                    "--listen",
                    f'"{value}" is given twice',
                    "give each address once",
                )
            )
            continue
        seen.add(value)
        result.append(
            ListenerConfig.model_validate({**template, "name": f"listen{index}", "address": value})
        )
    return result


def _delivery(settings: Settings, deliver: Any, problems: list[YamlError]) -> DeliveryConfig | None:
    hint = "write --deliver sandbox, --deliver mx or --deliver smarthost://HOST:PORT"
    if not isinstance(deliver, str):
        problems.append(_flag_error("--deliver", f"{deliver!r} is not a delivery mode", hint))
        return None
    mode: Literal["sandbox", "smarthost", "mx"]
    smarthost = settings.delivery.smarthost
    if deliver in ("sandbox", "mx"):
        mode = "sandbox" if deliver == "sandbox" else "mx"
    elif deliver.startswith("smarthost://"):
        mode = "smarthost"
        smarthost = deliver.removeprefix("smarthost://").rstrip("/")
        try:
            parse_host_port(smarthost)
        except ValueError:
            problems.append(
                _flag_error(
                    "--deliver",
                    f'"{deliver}" does not name a HOST:PORT after smarthost://',
                    "write e.g. --deliver smarthost://mail.example.org:587",
                )
            )
            return None
    else:
        problems.append(_flag_error("--deliver", f'"{deliver}" is not a delivery mode', hint))
        return None
    return DeliveryConfig.model_validate(
        {**settings.delivery.model_dump(), "mode": mode, "smarthost": smarthost}
    )
