"""Load phigate.yaml into `Settings`, reporting every problem with file:line:column.

Validation itself is pydantic's (`gateway.config`); reading the file strictly
and locating each error is `gateway.yaml_models`'. This module adds the
settings' own hints and applies the CLI's quick overrides (--data-dir,
--listen, --deliver).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from gateway.config import DeliveryConfig, ListenerConfig, Settings, parse_host_port
from gateway.strict_yaml import YamlError, describe_value
from gateway.yaml_models import ModelErrors, ModelSchema, read_document, validate_document

__all__ = ["SettingsError", "apply_overrides", "load_settings", "template_text"]

TEMPLATE_NAME = "phigate.yaml"


class SettingsError(ModelErrors):
    """All problems found in a settings file or in the CLI overrides."""


SETTINGS_SCHEMA = ModelSchema(
    Settings,
    value_hints=(
        ("is not HOST:PORT", "write HOST:PORT, e.g. 127.0.0.1:2525 or [::1]:2525"),
        ("is not a network", "write a network in CIDR form, e.g. 10.20.0.0/16 or 192.168.1.7/32"),
        ("listener names must be unique", 'give each listener its own "name"'),
        ("at least one listener", 'add a listener, e.g. "- address: 127.0.0.1:2525"'),
        ("mode smarthost needs", "add e.g. smarthost: mail.example.org:587 under delivery"),
        (
            "can never be reached",
            "raise the longer window's limit to at least the shorter one's, lower the "
            "shorter one, or set the longer one to 0 (unlimited)",
        ),
        (
            "no relay network is called",
            "name a relay network of relay_networks, or remove the entry",
        ),
        ("retry_schedule needs", "list seconds between attempts, e.g. [60, 300, 900]"),
    ),
    fallback_hint="see the comment for this setting in the template (phigate init)",
)


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
    try:
        doc = read_document(path, "settings file")
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
        settings = validate_document(SETTINGS_SCHEMA, doc, data)
    except ModelErrors as exc:
        raise SettingsError(exc.problems) from None

    # Paths in a file are relative to the file, not to wherever phigate was
    # started from; otherwise `phigate serve -c /etc/phigate/phigate.yaml`
    # would put its data in the current directory.
    update = {"data_dir": _beside(path, settings.data_dir)}
    if settings.policy_dir:
        update["policy_dir"] = _beside(path, settings.policy_dir)
    return settings.model_copy(update=update)


def _beside(settings_file: Path, value: str) -> str:
    """An absolute path; a relative `value` is taken relative to the settings file."""
    candidate = Path(value).expanduser()
    if not candidate.is_absolute():
        candidate = settings_file.parent / candidate
    return os.path.abspath(candidate)


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
