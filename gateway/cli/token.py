"""`phigate token`: API tokens for the web APIs (consent, portal recall, sending)."""

from __future__ import annotations

import time

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
from gateway.web import roles, tokens
from gateway.web.tokens import TokenError


@click.group("token")
def token_group() -> None:
    """API tokens for the consent API (/api/v1/consent, see docs/consent-api.md),
    portal recall (/api/v1/portal, see docs/portal.md) and sending mail
    (/api/v1/messages, see docs/send-api.md).

    A client sends its token as `Authorization: Bearer <token>`. Scopes:
    consent:read (query states and history), consent:write (grant, revoke,
    opt out), consent (both); portal:recall, or portal (recall portal
    messages); send (send mail as the principal given with --principal: its
    sender domains, checked as for SMTP AUTH). A role gives the scopes it
    means (docs/reviewer.md): admin (all but send), operator (portal:recall),
    auditor (consent:read), consent-writer (consent). Every change a token
    makes is audited under its name.

    \b
      phigate token add crm --scope consent          # prints the token once
      phigate token add reports --scope consent:read
      phigate token add ehr --scope portal           # recalls portal messages
      phigate token add ehr-send --scope send --principal ehr   # sends as ehr
      phigate token add siem --role auditor          # consent:read
      phigate token ls
      phigate token revoke crm                       # stops working at once
    """


@token_group.command("add")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(sorted(tokens.SCOPE_NAMES)),
    help="What the token may do (repeatable): consent:read, consent:write, consent (both), "
    "portal:recall or portal (the same), send (with --principal).",
)
@click.option(
    "--principal",
    help="The principal a token with scope send sends as (`phigate principal ls`): "
    "its sender domains and From: domains apply as for SMTP AUTH.",
)
@click.option(
    "--role",
    type=click.Choice(roles.ROLES),
    help="The scopes of a role instead of (or besides) --scope: admin, operator, auditor, "
    "consent-writer.",
)
@click.option("--json", "as_json", is_flag=True, help="Print name, scopes and token as JSON.")
@config_options
def token_add(
    name: str,
    scopes: tuple[str, ...],
    role: str | None,
    principal: str | None,
    as_json: bool,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Create token NAME and print its secret once (only a hash of it is kept)."""
    if role is not None:
        scopes = (*scopes, *roles.token_scopes(role))
    if not scopes:
        fail("give the token --scope SCOPE or --role ROLE", EXIT_USAGE)
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                secret = tokens.add(conn, name, scopes, time.time(), cli_actor(), principal)
        except TokenError as exc:
            fail(str(exc), EXIT_USAGE)
    granted = list(tokens.expand_scopes(scopes))
    if as_json:
        print_json({"name": name, "scopes": granted, "principal": principal, "token": secret})
    else:
        sends_as = f", sending as principal {principal!r}" if principal else ""
        click.echo(f"Token {name!r} created with scopes {', '.join(granted)}{sends_as}.")
        click.echo(f"Token (shown only now; send as `Authorization: Bearer ...`): {secret}")


@token_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the tokens as JSON.")
@config_options
def token_ls(as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """List tokens with their scopes and times (never their secrets)."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        items = tokens.list_all(conn)
    if as_json:
        print_json(
            [
                {
                    "name": t.name,
                    "scopes": sorted(t.scopes),
                    "principal": t.principal,
                    "created_at": t.created_at,
                    "last_used_at": t.last_used_at,
                    "revoked_at": t.revoked_at,
                }
                for t in items
            ]
        )
        return
    if not items:
        click.echo("No tokens (create one with `phigate token add NAME --scope consent`).")
        return
    click.echo(f"{'NAME':<24} {'SCOPES':<28} {'CREATED':<19}  {'LAST USED':<19}  STATE")
    for t in items:
        state = f"revoked {when(t.revoked_at)}" if t.revoked_at is not None else "active"
        sends_as = f" (sends as {t.principal})" if t.principal else ""
        click.echo(
            f"{t.name:<24} {' '.join(sorted(t.scopes)):<28} {when(t.created_at):<19}  "
            f"{when(t.last_used_at):<19}  {state}{sends_as}"
        )


@token_group.command("revoke")
@click.argument("name")
@config_options
def token_revoke(name: str, config_file: str | None, data_dir: str | None) -> None:
    """Revoke token NAME: the API refuses it (401) from the next request on."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                tokens.revoke(conn, name, time.time(), cli_actor())
        except TokenError as exc:
            fail(str(exc), EXIT_USAGE)
    click.echo(f"Token {name!r} revoked.")
