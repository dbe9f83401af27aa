"""`phigate user`: people who sign in to the reviewer's pages (/review/)."""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable

import click

from gateway.cli.common import (
    EXIT_USAGE,
    cli_actor,
    cli_settings,
    config_options,
    fail,
    open_store,
    print_json,
    when,
)
from gateway.config import Settings
from gateway.store.keyring import KeyringError
from gateway.web import factors, roles, users
from gateway.web.factors import FactorError
from gateway.web.roles import RoleError
from gateway.web.users import UserError


@click.group("user")
def user_group() -> None:
    """People who sign in to the reviewer's pages (/review/ on the web app):
    audit search, message timelines and reports (see docs/reviewer.md).

    \b
    Roles: admin (everything), operator (the queue), auditor (read-only:
    audit search, timelines, reports), consent-writer (the consent registry).
    admin and auditor sign in with a TOTP code too (reviewer.totp_required_roles).
    Every change here is an audit event naming who made it.

    \b
      phigate user add alice --role auditor          # asks for the password twice
      phigate user totp enroll alice                 # shows the secret once
      phigate user ls
      phigate user role alice admin
      phigate user unlock alice                      # after too many wrong attempts
      phigate user disable alice                     # signs her out at once
    """


def _password(from_stdin: bool) -> str:
    """The new password: one line of standard input, or typed twice at a prompt."""
    if from_stdin:
        typed = sys.stdin.readline().rstrip("\r\n")
    else:
        typed = click.prompt(
            "Password (12 characters or more)", hide_input=True, confirmation_prompt=True
        )
    try:
        factors.check_password_rules(typed)
    except FactorError as exc:
        fail(str(exc), EXIT_USAGE)
    return typed


def _change(settings: Settings, change: Callable[..., None], *args: object) -> None:
    """Run one change to a person's record in a transaction; its error as the CLI's."""
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                change(conn, *args, time.time(), cli_actor())
        except (UserError, RoleError) as exc:
            fail(str(exc), EXIT_USAGE)


_ROLE = click.Choice(roles.ROLES)
_PASSWORD_STDIN = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from one line of standard input instead of a prompt.",
)


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=_ROLE, required=True, help="What the person may do.")
@_PASSWORD_STDIN
@config_options
def user_add(
    name: str, role: str, password_stdin: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Add person NAME with a role and a password (kept only as an argon2id hash)."""
    settings = cli_settings(config_file, data_dir)
    password_hash = factors.hash_password(_password(password_stdin))
    _change(settings, users.add, name, role, password_hash)
    click.echo(f"Added {name} ({role}).")
    if role in settings.reviewer.totp_required_roles:
        click.echo(
            f"The role {role} signs in with a TOTP code too: run `phigate user totp enroll "
            f"{name}` before they sign in."
        )


@user_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the people as JSON.")
@config_options
def user_ls(as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """List people with their roles and states (never their passwords or secrets)."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        found = users.list_all(conn)
    now = time.time()
    if as_json:
        print_json(
            [
                {
                    "name": u.name,
                    "role": u.role,
                    "state": u.state(now),
                    "totp": u.enrolled,
                    "failed_attempts": u.failed_attempts,
                    "locked_until": u.locked_until if u.locked(now) else None,
                    "created_at": u.created_at,
                    "disabled_at": u.disabled_at,
                }
                for u in found
            ]
        )
        return
    if not found:
        click.echo("No people (add one with `phigate user add NAME --role auditor`).")
        return
    click.echo(f"{'NAME':<24} {'ROLE':<15} {'TOTP':<5} {'CREATED':<19}  STATE")
    for u in found:
        state = u.state(now)
        if state == "locked":
            state = f"locked until {when(u.locked_until)}"
        click.echo(
            f"{u.name:<24} {u.role:<15} {'yes' if u.enrolled else 'no':<5} "
            f"{when(u.created_at):<19}  {state}"
        )


@user_group.command("passwd")
@click.argument("name")
@_PASSWORD_STDIN
@config_options
def user_passwd(
    name: str, password_stdin: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Set a new password for NAME; their sessions end."""
    settings = cli_settings(config_file, data_dir)
    password_hash = factors.hash_password(_password(password_stdin))
    _change(settings, users.set_password, name, password_hash)
    click.echo(f"Password of {name} changed; their sessions ended.")


@user_group.command("role")
@click.argument("name")
@click.argument("role", type=_ROLE, metavar="ROLE")
@config_options
def user_role(name: str, role: str, config_file: str | None, data_dir: str | None) -> None:
    """Give NAME another ROLE (from their next request on)."""
    settings = cli_settings(config_file, data_dir)
    _change(settings, users.set_role, name, role)
    click.echo(f"{name} is now {role}.")


@user_group.command("disable")
@click.argument("name")
@config_options
def user_disable(name: str, config_file: str | None, data_dir: str | None) -> None:
    """Stop NAME from signing in; their sessions end at once (the record stays)."""
    settings = cli_settings(config_file, data_dir)
    _change(settings, users.disable, name)
    click.echo(f"{name} is disabled.")


@user_group.command("unlock")
@click.argument("name")
@config_options
def user_unlock(name: str, config_file: str | None, data_dir: str | None) -> None:
    """Let NAME sign in again after too many wrong passwords or codes."""
    settings = cli_settings(config_file, data_dir)
    _change(settings, users.unlock, name)
    click.echo(f"{name} is unlocked.")


@user_group.group("totp")
def totp_group() -> None:
    """TOTP codes (RFC 6238, any authenticator app) as a second factor."""


@totp_group.command("enroll")
@click.argument("name")
@click.option("--no-qr", is_flag=True, help="Do not print the QR code.")
@click.option("--json", "as_json", is_flag=True, help="Print name, secret and URI as JSON.")
@config_options
def totp_enroll(
    name: str, no_qr: bool, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Give NAME a new TOTP secret and show it once (a QR code and the text).

    Hand it to the person only: whoever has it can make their codes. Codes
    from a previous secret stop working.
    """
    settings = cli_settings(config_file, data_dir)
    enrolment = factors.new_totp(name)
    try:
        key = factors.web_key(settings.path(settings.keys_dir))
    except KeyringError as exc:
        fail(str(exc))
    _change(settings, users.set_totp, name, factors.seal_totp(key, name, enrolment.secret))
    if as_json:
        print_json({"name": name, "secret": enrolment.secret, "uri": enrolment.uri})
        return
    if not no_qr:
        import segno  # only here: no other command draws a QR code

        drawn = io.StringIO()
        segno.make(enrolment.uri, error="m").terminal(out=drawn, compact=True)
        click.echo(drawn.getvalue(), nl=False)
    click.echo(f"Secret (shown only now): {enrolment.secret}")
    click.echo(f"URI: {enrolment.uri}")
    click.echo(f"Scan the QR code or type the secret into {name}'s authenticator app.")
