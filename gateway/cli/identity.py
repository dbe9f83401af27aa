"""Who runs a command that acts as a person (the archive's): name, password, TOTP code.

The person signs in as on the reviewer's pages, with the same records and the
same accounting (gateway.web.users): a wrong password or code counts toward
the same lockout, and every attempt is a `web_sign_in` event whose client is
CLIENT rather than an address. The password is read at a hidden prompt, or
from the first line of a file (`--password-file FILE`, `-` for standard
input) for scripts; the code at a prompt or from `--code`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from gateway.cli.common import fail
from gateway.config import Settings
from gateway.store.database import Database
from gateway.store.keyring import KeyringError
from gateway.web import factors, users
from gateway.web.users import User

F = TypeVar("F", bound=Callable[..., Any])

CLIENT = "cli"  # the sign-in events' client: this host's command line
EXIT_REFUSED = 3


def person_options(func: F) -> F:
    """--user, --password-file and --code, for commands a signed-in person runs."""
    func = click.option(
        "--code",
        metavar="CODE",
        help="The TOTP code from your authenticator app (asked for when needed if not given).",
    )(func)
    func = click.option(
        "--password-file",
        type=click.Path(dir_okay=False, allow_dash=True),
        help="Read your password from the first line of this file (- for standard input) "
        "instead of a hidden prompt.",
    )(func)
    func = click.option(
        "--user",
        "user_name",
        required=True,
        envvar="PHIGATE_USER",
        metavar="NAME",
        help="Who you are: your name on the reviewer's pages (`phigate user ls`). "
        "Also read from $PHIGATE_USER.",
    )(func)
    return func


def _password(password_file: str | None) -> str:
    if password_file is None:
        return str(click.prompt("Password", hide_input=True, err=True))
    if password_file == "-":
        return sys.stdin.readline().rstrip("\r\n")
    try:
        with Path(password_file).open(encoding="utf-8") as handle:
            return handle.readline().rstrip("\r\n")
    except OSError as exc:
        fail(f"cannot read the password file {password_file}: {exc.strerror}")


def _refused(message: str) -> NoReturn:
    fail(message, EXIT_REFUSED)


def _wrong(db: Database, settings: Settings, user: User, factor: str, now: float) -> NoReturn:
    config = settings.reviewer
    with db.transaction() as conn:
        until = users.failed(
            conn, user, factor, config.lockout_attempts, config.lockout_minutes * 60, CLIENT, now
        )
    if until is not None:
        _refused(
            f"too many wrong attempts: {user.name} cannot sign in until "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(until))} "
            f"(or an admin runs `phigate user unlock {user.name}`)"
        )
    _refused(f"the name or {factor} is not right")


def _check_code(db: Database, settings: Settings, user: User, code: str | None) -> None:
    assert user.totp_sealed is not None
    try:
        key = factors.web_key(settings.path(settings.keys_dir))
        secret = factors.open_totp(key, user.name, user.totp_sealed)
    except (KeyringError, factors.FactorError) as exc:
        with db.transaction() as conn:
            users.refused(conn, user, "totp unreadable", CLIENT, time.time())
        _refused(str(exc))
    typed = code if code is not None else str(click.prompt("TOTP code", err=True))
    step = factors.totp_step(secret, typed, user.totp_last_step)
    with db.transaction() as conn:
        used = step is not None and users.use_step(conn, user, step)
    if not used:
        _wrong(db, settings, user, "code", time.time())


def signed_in(
    db: Database, settings: Settings, name: str, password_file: str | None, code: str | None
) -> User:
    """The person, once their password (and TOTP code, if their role needs one or they
    enrolled) is right; otherwise the command ends, the attempt counted and audited."""
    password = _password(password_file)
    now = time.time()
    with db.reading() as conn:
        user = users.get(conn, name)
    if user is not None and user.locked(now):
        with db.transaction() as conn:
            users.refused(conn, user, "locked", CLIENT, now)
        _refused(
            f"{name} is locked out after too many wrong attempts; ask an admin to run "
            f"`phigate user unlock {name}`"
        )
    right = factors.password_matches(user.password_hash if user else None, password)
    if user is None or user.disabled_at is not None:
        with db.transaction() as conn:
            users.refused(conn, user, "unknown name" if user is None else "disabled", CLIENT, now)
        _refused("the name or password is not right")
    if not right:
        _wrong(db, settings, user, "password", now)
    if user.enrolled or user.role in settings.reviewer.totp_required_roles:
        if not user.enrolled:
            with db.transaction() as conn:
                users.refused(conn, user, "no totp", CLIENT, now)
            _refused(
                f"people with the role {user.role} give a TOTP code too: ask an admin to run "
                f"`phigate user totp enroll {user.name}`"
            )
        _check_code(db, settings, user, code)
    with db.transaction() as conn:
        users.signed_in(conn, user, CLIENT, time.time())
    return user
