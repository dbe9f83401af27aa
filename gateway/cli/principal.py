"""`phigate principal`: the sending systems that authenticate with SMTP AUTH."""

from __future__ import annotations

import click

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.cli.common import (
    EXIT_USAGE,
    cli_actor,
    cli_settings,
    config_options,
    fail,
    open_store,
    print_json,
)
from gateway.store import principals
from gateway.store.principals import PrincipalError


@click.group()
def principal() -> None:
    """Sending systems that authenticate with SMTP AUTH."""


@principal.command("add")
@click.argument("name")
@click.option(
    "--domain",
    "domains",
    multiple=True,
    required=True,
    help="A sender domain this principal may use (repeatable): in MAIL FROM, From: and Sender:.",
)
@click.option(
    "--from-domain",
    "from_domains",
    multiple=True,
    help="A further domain its From: and Sender: headers may name, and DKIM may sign as "
    "(repeatable; e.g. the brands a CRM sends for).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
@config_options
def principal_add(
    name: str,
    domains: tuple[str, ...],
    from_domains: tuple[str, ...],
    as_json: bool,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Create principal NAME allowed to send as --domain; prints its secret once.

    The From: and Sender: headers of its mail must name a --domain or a
    --from-domain; change the latter later with `phigate principal
    set-from-domains`.
    """
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                secret = principals.add(conn, name, domains, from_domains)
                created = principals.get(conn, name)
                assert created is not None
                detail = "domains=" + ",".join(created.domains)
                if created.from_domains:
                    detail += " from_domains=" + ",".join(created.from_domains)
                trail.append(
                    conn,
                    [
                        AuditEvent(
                            event="principal",
                            result="added",
                            principal=name,
                            detail=detail[:200],
                            actor=cli_actor(),
                        )
                    ],
                )
        except PrincipalError as exc:
            fail(str(exc), EXIT_USAGE)
    if as_json:
        print_json(
            {
                "name": name,
                "secret": secret,
                "domains": list(created.domains),
                "from_domains": list(created.from_domains),
            }
        )
    else:
        extra = f" (From: also {', '.join(created.from_domains)})" if created.from_domains else ""
        click.echo(f"Principal {name!r} created for {', '.join(created.domains)}{extra}.")
        click.echo(f"Secret (shown only now; AUTH PLAIN/LOGIN as {name!r}): {secret}")


@principal.command("set-from-domains")
@click.argument("name")
@click.argument("from_domains", nargs=-1, metavar="[DOMAIN]...")
@click.option("--none", "clear", is_flag=True, help="Remove every extra From domain.")
@config_options
def principal_set_from_domains(
    name: str,
    from_domains: tuple[str, ...],
    clear: bool,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Replace the extra domains NAME's From: and Sender: headers may name.

    Its sender domains (--domain at `add`) are always allowed; these come on
    top, e.g. `phigate principal set-from-domains crm brand-a.example
    brand-b.example`. Takes effect on the running server at the next AUTH,
    and on queued mail before it is signed.
    """
    if clear == bool(from_domains):
        fail("give the domains, or --none to remove them all", EXIT_USAGE)
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                clean = principals.set_from_domains(conn, name, from_domains)
                trail.append(
                    conn,
                    [
                        AuditEvent(
                            event="principal",
                            result="from_domains",
                            principal=name,
                            detail=("from_domains=" + ",".join(clean))[:200],
                            actor=cli_actor(),
                        )
                    ],
                )
        except PrincipalError as exc:
            fail(str(exc), EXIT_USAGE)
    shown = ", ".join(clean) if clean else "none (only its sender domains)"
    click.echo(f"Principal {name!r}: extra From domains {shown}.")


@principal.command("ls")
@click.option("--json", "as_json", is_flag=True)
@config_options
def principal_ls(as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """List principals (never their secrets)."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        items = principals.list_all(conn)
    if as_json:
        print_json(
            [
                {
                    "name": p.name,
                    "domains": list(p.domains),
                    "from_domains": list(p.from_domains),
                    "enabled": p.enabled,
                    "created_at": p.created_at,
                }
                for p in items
            ]
        )
        return
    for p in items:
        state = "enabled " if p.enabled else "disabled"
        extra = f" (From: also {', '.join(p.from_domains)})" if p.from_domains else ""
        click.echo(f"{p.name:<24} {state} {', '.join(p.domains)}{extra}")


def _set_enabled(name: str, enabled: bool, config_file: str | None, data_dir: str | None) -> None:
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                principals.set_enabled(conn, name, enabled)
                trail.append(
                    conn,
                    [
                        AuditEvent(
                            event="principal",
                            principal=name,
                            result="enabled" if enabled else "disabled",
                            actor=cli_actor(),
                        )
                    ],
                )
        except PrincipalError as exc:
            fail(str(exc), EXIT_USAGE)
    click.echo(f"Principal {name!r} {'enabled' if enabled else 'disabled'}.")


@principal.command("disable")
@click.argument("name")
@config_options
def principal_disable(name: str, config_file: str | None, data_dir: str | None) -> None:
    """Refuse AUTH for NAME from now on (takes effect on the running server at once)."""
    _set_enabled(name, False, config_file, data_dir)


@principal.command("enable")
@click.argument("name")
@config_options
def principal_enable(name: str, config_file: str | None, data_dir: str | None) -> None:
    """Allow NAME to authenticate again."""
    _set_enabled(name, True, config_file, data_dir)


@principal.command("usage")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the limits and counts as JSON.")
@config_options
def principal_usage(
    name: str, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Show what NAME has sent in the current minute, hour and day against its limits.

    The limits are `rate_limits` in phigate.yaml: the defaults, with NAME's
    overrides under `rate_limits.principals`. Counts are of accepted messages
    and their recipients, summed over every process and node on the database;
    windows are fixed UTC minutes, hours and days. A message that would pass a
    limit is refused with 451 4.7.1 and the seconds until its window ends
    (docs/rate-limits.md). For example:

        phigate principal usage ehr1 -c /etc/phigate/phigate.yaml
    """
    import time

    from gateway.ratelimit import RateKey, RateLimiter

    settings = cli_settings(config_file, data_dir)
    limiter = RateLimiter(settings.rate_limits)
    with open_store(settings) as db, db.reading() as conn:
        if principals.get(conn, name) is None:
            fail(f"no principal {name!r} (see `phigate principal ls`)", EXIT_USAGE)
        used = limiter.usage(conn, RateKey("principal", name), time.time())
    source = (
        "rate_limits.principals." + name
        if name in settings.rate_limits.principals
        else ("rate_limits.defaults")
    )
    if as_json:
        print_json(
            {
                "principal": name,
                "limits_from": source,
                "limits": {
                    u.limit: {
                        "allowed": u.allowed,
                        "used": u.used,
                        "window_seconds": u.window_seconds,
                        "resets_in": u.resets_in,
                    }
                    for u in used
                },
            }
        )
        return
    click.echo(f"Principal {name!r}, limits from {source}:")
    for u in used:
        allowed = "unlimited" if u.allowed is None else str(u.allowed)
        if u.used is None:
            click.echo(f"  {u.limit:<24} {allowed:>10} per message")
            continue
        click.echo(f"  {u.limit:<24} {u.used:>10} of {allowed:<10} window ends in {u.resets_in} s")
