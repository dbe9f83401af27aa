"""`phigate sandbox`: what sandbox delivery captured instead of sending."""

from __future__ import annotations

import sys

import click

from gateway.cli.common import (
    cli_settings,
    config_options,
    fail,
    open_keyring,
    open_store,
    print_json,
    when,
)
from gateway.store import sandbox


@click.group("sandbox")
def sandbox_group() -> None:
    """Mail captured by sandbox delivery instead of being sent."""


@sandbox_group.command("ls")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@config_options
def sandbox_ls(limit: int, as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """List captured messages, newest first."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        rows = sandbox.list_captured(conn, limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("Sandbox is empty.")
    for r in rows:
        recipients: list[str] = r["recipients"]  # type: ignore[assignment]
        click.echo(
            f"{r['id']:>6}  {when(r['captured_at'])}  {r['queue_id']}  {r['size']:>8} B  "
            f"{r['sender'] or '<>'} -> {', '.join(recipients)}"
        )


@sandbox_group.command("show")
@click.argument("capture_id", type=int)
@config_options
def sandbox_show(capture_id: int, config_file: str | None, data_dir: str | None) -> None:
    """Print a captured message exactly as it would have been sent (decrypted)."""
    settings = cli_settings(config_file, data_dir)
    keyring = open_keyring(settings)
    with open_store(settings) as db, db.reading() as conn:
        found = sandbox.get_sealed(conn, capture_id)
    if found is None:
        fail(f"no captured message {capture_id} (see `phigate sandbox ls`)")
        return
    context, sealed = found
    sys.stdout.buffer.write(keyring.open(sealed, context.encode()))
    sys.stdout.flush()
