"""`phigate db status|upgrade`: the database schema's revision, and its upgrade."""

from __future__ import annotations

import sys

import click

from gateway.cli.common import cli_settings, config_options, fail, need_store, print_json


@click.group("db")
def db_group() -> None:
    """The database's schema: where it is, and its upgrade to this version.

    \b
    Several nodes on one PostgreSQL database never migrate it by themselves:
    before starting the nodes of a new version, upgrade the schema once:
      phigate db status -c /etc/phigate/phigate.yaml
      phigate db upgrade -c /etc/phigate/phigate.yaml
    The embedded SQLite store is upgraded by `phigate serve` itself.
    """


@db_group.command("status")
@config_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def status(config_file: str | None, data_dir: str | None, as_json: bool) -> None:
    """Show the schema's revision and the one this version needs.

    Exits 0 when they are the same, 1 when the schema is behind (run
    `phigate db upgrade`) or ahead (a newer phigate upgraded it).

    \b
    Example:
      phigate db status -c /etc/phigate/phigate.yaml --json
      {"current": "0014", "head": "0015", "state": "behind"}
    """
    settings = cli_settings(config_file, data_dir)
    need_store(settings)
    from gateway.store.database import Database

    db = Database(settings.db_url)
    try:
        state = db.schema_state()
    finally:
        db.close()
    word = "ahead" if state.ahead else "behind" if state.behind else "current"
    if as_json:
        print_json({"current": state.current, "head": state.head, "state": word})
    else:
        click.echo(f"schema revision: {state.current or 'none (empty database)'}")
        click.echo(f"this version needs: {state.head}")
        advice = {
            "current": "up to date",
            "behind": "behind: run `phigate db upgrade` with the same settings",
            "ahead": "ahead: a newer phigate upgraded it; run that version",
        }
        click.echo(f"state: {advice[word]}")
    if word != "current":
        sys.exit(1)


@db_group.command("upgrade")
@config_options
def upgrade(config_file: str | None, data_dir: str | None) -> None:
    """Upgrade the schema to the revision this version needs (safe to run again).

    Run it once, from one node, before starting nodes of a new version; nodes
    of the old version keep serving meanwhile only if the release notes say its
    migrations allow it. Two upgrades at once take turns.

    \b
    Example:
      phigate db upgrade -c /etc/phigate/phigate.yaml
      upgraded the schema from revision 0014 to revision 0015
    """
    settings = cli_settings(config_file, data_dir)
    need_store(settings)
    from gateway.store.database import Database, SchemaError

    db = Database(settings.db_url)
    try:
        before = db.migrate()
    except SchemaError as exc:
        fail(str(exc))
    finally:
        db.close()
    if not before.behind:
        click.echo(f"the schema is at revision {before.head} already; nothing to do")
    else:
        start = f"revision {before.current}" if before.current else "an empty database"
        click.echo(f"upgraded the schema from {start} to revision {before.head}")
