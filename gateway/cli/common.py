"""What every `phigate` subcommand shares: options, settings, store, output and errors."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from gateway.config import Settings
from gateway.settings_loader import SettingsError, load_settings
from gateway.store.keyring import Keyring, KeyringError

if TYPE_CHECKING:
    from gateway.store.database import Database

F = TypeVar("F", bound=Callable[..., Any])

EXIT_USAGE = 2


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"phigate: {message}", err=True)
    sys.exit(code)


def cli_actor() -> str:
    """Who runs the command, as an audit event's actor: "cli:<OS user>"."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (containers)
        user = f"uid{os.getuid()}"
    return f"cli:{user}"[:128]


def audit_admin(settings: Settings, event: str, result: str, detail: str) -> None:
    """Record an admin action whose change is not in the store (key files, a
    signal to the server) as an audit event naming who made it."""
    from gateway.audit import trail
    from gateway.audit.trail import AuditEvent

    done = AuditEvent(event, result, detail=detail[:255], actor=cli_actor())
    with open_store(settings) as db, db.transaction() as conn:
        trail.append(conn, [done])


def when(ts: object) -> str:
    if not isinstance(ts, (int, float)):
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def config_options(func: F) -> F:
    """-c/--config and --data-dir, shared by every command that opens the store."""
    func = click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        help="Data directory (database, keys, certificates). Overrides the config file.",
    )(func)
    func = click.option(
        "-c",
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        envvar="PHIGATE_CONFIG",
        help="Settings file (phigate.yaml). Without it: embedded defaults under "
        "./phigate-data. Also read from $PHIGATE_CONFIG.",
    )(func)
    return func


def policy_config_option(func: F) -> F:
    """-c/--config for commands that read only the policy and inspection settings."""
    return click.option(
        "-c",
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        envvar="PHIGATE_CONFIG",
        help="Settings file naming policy_dir. Also read from $PHIGATE_CONFIG.",
    )(func)


def cli_settings(config_file: str | None, data_dir: str | None, **extra: Any) -> Settings:
    overrides: dict[str, Any] = {k: v for k, v in extra.items() if v}
    if data_dir:
        overrides["data_dir"] = data_dir
    path = Path(config_file) if config_file else None
    if path is not None and not path.is_file():
        fail(f"config file {path} not found (create one with `phigate init DIR`)", EXIT_USAGE)
    try:
        settings = load_settings(path, overrides)
    except SettingsError as exc:
        fail(f"configuration is not valid:\n{exc}", EXIT_USAGE)
    if path is None:
        settings = settings.model_copy(update={"dev_principal": True})
    return settings


def read_detector_cache(settings: Settings) -> None:
    """Load the compiled pattern database that `serve` keeps (settings' cache_dir) rather
    than compile it. Never written here: a command run as another user must not leave
    files the server would refuse."""
    from gateway.inspect.detect import dbcache  # only commands that inspect load detection

    dbcache.use_directory(dbcache.directory_for(settings), write=False)


def need_store(settings: Settings) -> None:
    """Stop with the fix when the embedded store's data directory does not exist."""
    if settings.database_url == "" and not Path(settings.data_dir).is_dir():
        fail(
            f"no data directory at {settings.data_dir}: start `phigate serve` once, run "
            "`phigate init DIR`, or pass --data-dir / -c",
            EXIT_USAGE,
        )


@contextmanager
def open_store(settings: Settings) -> Iterator[Database]:
    need_store(settings)
    # The store (SQLAlchemy, migrations) loads only for commands that open it.
    from gateway import datadir
    from gateway.store.database import SchemaError

    try:
        db = datadir.open_database(settings)
    except (KeyringError, SchemaError) as exc:
        fail(str(exc))
    try:
        yield db
    finally:
        db.close()


def open_keyring(settings: Settings) -> Keyring:
    try:
        return Keyring(settings.path(settings.keys_dir))
    except KeyringError as exc:
        fail(str(exc))
