"""`phigate serve`, `phigate init` and `phigate config`: run the server, make its settings."""

from __future__ import annotations

from pathlib import Path

import click

from gateway import datadir
from gateway.cli.common import EXIT_USAGE, cli_settings, config_options, fail
from gateway.config import NODE_ROLES
from gateway.settings_loader import load_settings, template_text
from gateway.store.database import SchemaError
from gateway.store.keyring import KeyringError


@click.command()
@config_options
@click.option(
    "--listen",
    multiple=True,
    metavar="HOST:PORT",
    help="Listen here instead of the configured addresses (repeatable).",
)
@click.option(
    "--deliver",
    metavar="MODE",
    help="sandbox | smarthost://HOST:PORT | mx (overrides delivery.mode).",
)
@click.option(
    "--role",
    "roles",
    metavar="ROLES",
    callback=lambda _ctx, _param, value: _roles(value),
    help="What this node does, comma-separated: smtp, delivery, web (overrides node.roles).",
)
def serve(
    config_file: str | None,
    data_dir: str | None,
    listen: tuple[str, ...],
    deliver: str | None,
    roles: list[str] | None,
) -> None:
    """Run the SMTP listeners and delivery workers until SIGTERM or Ctrl-C.

    Without -c, runs on embedded defaults: data in ./phigate-data (SQLite, a
    generated master key and self-signed certificate), submission with
    STARTTLS and AUTH on 127.0.0.1:2525, and sandbox delivery. The first run
    creates a principal "dev" and prints its secret once (also kept in
    DATA_DIR/dev-principal.json).

    \b
    Several nodes on one PostgreSQL database (docs/scale-out.md), each with
    its roles:
      phigate serve -c phigate.yaml --role smtp            # listeners only
      phigate serve -c phigate.yaml --role delivery,web    # no SMTP listener
    """
    settings = cli_settings(config_file, data_dir, listen=list(listen), deliver=deliver)
    if roles:
        node = settings.node.model_copy(update={"roles": roles})
        settings = settings.model_copy(update={"node": node})
    # The server's parts (aiosmtpd, the web app, delivery) load only for `serve`.
    from gateway import app
    from gateway.logs import configure

    configure(settings.log_level)
    try:
        datadir.prepare_data_dir(settings, generate_cert=settings.dev_principal)
        if settings.dev_principal:
            db = datadir.open_database(settings)
            try:
                creds = datadir.ensure_dev_principal(settings, db)
            finally:
                db.close()
            if creds is not None:
                click.echo(
                    f"Created principal {creds.name!r} for {', '.join(creds.domains)}; "
                    f"secret (shown once, also in "
                    f"{settings.path(datadir.DEV_CREDENTIALS)}): {creds.secret}",
                    err=True,
                )
        app.serve(settings)
    except (app.StartupError, KeyringError, SchemaError) as exc:
        fail(str(exc))


def _roles(value: str | None) -> list[str] | None:
    if value is None:
        return None
    roles = [role.strip() for role in value.split(",") if role.strip()]
    unknown = [role for role in roles if role not in NODE_ROLES]
    if not roles or unknown or len(roles) != len(set(roles)):
        raise click.BadParameter(
            f"{value!r}: give one or more of {', '.join(NODE_ROLES)}, each once, "
            "separated by commas (e.g. --role smtp,delivery)"
        )
    return roles


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
def init(directory: str) -> None:
    """Create DIRECTORY with a commented phigate.yaml, master key and dev certificate.

    Edit DIRECTORY/phigate.yaml (listeners, delivery, relay networks), replace
    the self-signed certificate with your own, then run
    `phigate config check -c DIRECTORY/phigate.yaml` and
    `phigate serve -c DIRECTORY/phigate.yaml`.
    """
    target = Path(directory)
    config_path = target / "phigate.yaml"
    if config_path.exists():
        fail(f"{config_path} already exists; not overwriting it", EXIT_USAGE)
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    config_path.write_text(template_text())
    settings = load_settings(config_path)
    datadir.prepare_data_dir(settings, generate_cert=True)
    try:
        datadir.open_database(settings).close()
    except (KeyringError, SchemaError) as exc:
        fail(str(exc))
    click.echo(
        f"Wrote {config_path}, master key in {settings.path(settings.keys_dir)}, "
        f"development certificate {settings.path(settings.tls.cert_file)}."
    )
    click.echo(
        f"Next: edit it, then `phigate config check -c {config_path}` and "
        f"`phigate principal add NAME --domain DOMAIN -c {config_path}`."
    )


@click.group()
def config() -> None:
    """Inspect and validate settings files."""


@config.command("check")
@config_options
def config_check(config_file: str | None, data_dir: str | None) -> None:
    """Validate a settings file; errors name the line, the key and the fix (exit 2)."""
    if not config_file:
        fail("give the file to check with -c FILE", EXIT_USAGE)
    settings = cli_settings(config_file, data_dir)
    from gateway import app  # the portal's templates are checked as `serve` checks them

    try:
        app.portal_notices(settings)
        app.portal_logo(settings)
        app.report_domains(settings)
        app.forwarder_tls(settings)
        app.retention_schedule(settings)
    except app.StartupError as exc:
        fail(str(exc), EXIT_USAGE)
    click.echo(f"{config_file}: OK")
    for listener in settings.listeners:
        click.echo(f"  listener {listener.name}: {listener.address} tls={listener.tls}")
    target = settings.delivery.smarthost if settings.delivery.mode == "smarthost" else ""
    click.echo(f"  delivery: {settings.delivery.mode} {target}".rstrip())
    forward = settings.audit.forward
    if forward.enabled:
        security = "tls" if forward.tls else "plain tcp (loopback)"
        click.echo(f"  audit forward: {forward.address} {security} cursor={forward.cursor}")
    archive = settings.archive
    if archive.enabled:
        storage = archive.storage
        where = f" bucket={storage.bucket}" if storage.kind == "s3" else ""
        click.echo(f"  archive: storage={storage.kind}{where} keys={archive.keys_dir}")
    click.echo(f"  data dir: {settings.data_dir}")
