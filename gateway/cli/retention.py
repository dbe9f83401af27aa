"""`phigate retention`: check the rules, explain one message, run them, list what was destroyed."""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gateway.archive.retention import Schedule, show
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

if TYPE_CHECKING:
    from sqlalchemy import Connection


@click.group("retention")
def retention_group() -> None:
    """How long archived mail is kept, and its destruction when due. See docs/retention.md.

    The rules file (archive.retention.rules_file) gives each archived message
    a rule, first match wins, and each rule how long the content is kept.
    A run crypto-shreds what is due (its data key and ciphertext are
    deleted, the metadata stays), never what a legal hold covers
    (`phigate hold`), and writes a destruction record per batch. The server
    runs it every archive.retention.run_every_seconds.

    \b
      phigate retention check retention.yaml     # validate and print the rules
      phigate retention explain 18C2F0A9B3D4E5F6A7B8
      phigate retention run --dry-run            # what a run would destroy
      phigate retention run --json
      phigate retention records --since 2026-01-01 --json > destroyed.jsonl
    """


def _load(path: Path) -> Schedule:
    from gateway.archive.rules_file import RetentionRulesError, load_schedule

    try:
        return load_schedule(path)
    except RetentionRulesError as exc:
        fail(f"the retention rules are not valid:\n{exc}", EXIT_USAGE)


def _schedule(settings: Settings) -> Schedule:
    rules_file = settings.archive.retention.rules_file
    if rules_file is None:
        fail(
            "no retention rules: set archive.retention.rules_file in the settings "
            "(see docs/retention.md)",
            EXIT_USAGE,
        )
    return _load(settings.path(rules_file))


@retention_group.command("check")
@click.argument("rules_file", required=False, type=click.Path(dir_okay=False))
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print the rules as JSON.")
def check(
    rules_file: str | None, config_file: str | None, data_dir: str | None, as_json: bool
) -> None:
    """Validate a rules file (by default the settings' one) and print its rules in order.

    Errors name the file, line, what is wrong and how to fix it (exit 2).
    Warnings (audit events kept less than six years, acknowledged) go to stderr.

    \b
      phigate retention check /etc/phigate/retention.yaml
      phigate retention check -c /etc/phigate/phigate.yaml
    """
    if rules_file is not None:
        schedule = _load(Path(rules_file))
    else:
        schedule = _schedule(cli_settings(config_file, data_dir))
    for warning in schedule.warnings():
        click.echo(f"warning: {warning}", err=True)
    rules = [
        {"name": r.name, "line": r.line, "match": r.match.describe(), "keep": show(r.keep)}
        for r in schedule.in_order
    ]
    if as_json:
        print_json(
            {
                "source": schedule.source,
                "rules": rules,
                "audit_events": show(schedule.audit_events),
                "warnings": schedule.warnings(),
            }
        )
        return
    click.echo(f"{schedule.source}: OK")
    for rule in rules:
        click.echo(f"  {rule['name']:<24} keep {rule['keep']:<8} {rule['match']}")
    click.echo(f"  audit events kept {show(schedule.audit_events)}")


@retention_group.command("explain")
@click.argument("queue_id")
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def explain(queue_id: str, config_file: str | None, data_dir: str | None, as_json: bool) -> None:
    """Which rule keeps archived message QUEUE_ID, when it is due, which holds cover it.

    \b
      phigate retention explain 18C2F0A9B3D4E5F6A7B8 --json
    """
    from gateway.archive.explain import explain as explained

    settings = cli_settings(config_file, data_dir)
    schedule = _schedule(settings)
    with open_store(settings) as db, db.reading() as conn:
        found = explained(conn, schedule, queue_id)
    if found is None:
        fail(f"no archived message {queue_id} (the archive keeps accepted mail once enabled)")
    if as_json:
        print_json(found.as_json())
        return
    click.echo(f"{queue_id}: received {when(found.received_at)} UTC")
    click.echo(
        f"  rule: {found.rule.name} (keep {show(found.rule.keep)}; {found.rule.match.describe()})"
    )
    if found.destroyed_at is not None:
        click.echo(
            f"  destroyed {when(found.destroyed_at)} UTC "
            f"(destruction record #{found.destruction_id})"
        )
    elif found.due_at is None:
        click.echo("  due: never (kept forever)")
    else:
        click.echo(f"  due: {when(found.due_at)} UTC")
    for hold in found.holds:
        state = "standing" if hold.standing else f"released {when(hold.released_at)}"
        click.echo(f"  hold #{hold.id} (case {hold.case_ref}): {state}")
    if found.held and found.destroyed_at is None:
        click.echo("  held: not destroyed until every standing hold is released")


@retention_group.command("run")
@config_options
@click.option("--dry-run", is_flag=True, help="Report what would be destroyed; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's outcome as JSON.")
def run(config_file: str | None, data_dir: str | None, dry_run: bool, as_json: bool) -> None:
    """Destroy archived content that is due and that no standing legal hold covers.

    Content is crypto-shredded: its data key and ciphertext are deleted (and
    the object, for content in an object store); the metadata stays, with
    the destruction record. Messages a hold covers are skipped and reported.
    Audited with who ran it. The server does the same on its schedule.

    \b
      phigate retention run --dry-run
      phigate retention run --json
    """
    from gateway.archive import destruction
    from gateway.archive.storage import ArchiveStorageError, configured_storage

    settings = cli_settings(config_file, data_dir)
    schedule = _schedule(settings)
    try:
        storage = configured_storage(settings)
    except ArchiveStorageError as exc:
        fail(str(exc))
    with open_store(settings) as db:

        def transaction() -> AbstractContextManager[Connection]:
            return db.reading() if dry_run else db.transaction(behind_writers=True)

        try:
            outcome = destruction.run(
                transaction,
                schedule,
                time.time(),
                cli_actor(),
                dry_run=dry_run,
                batch=settings.archive.retention.batch,
                storage=storage,
            )
        except destruction.DestructionError as exc:
            fail(str(exc))
    if as_json:
        print_json(outcome.as_json())
        return
    verb = "would destroy" if dry_run else "destroyed"
    click.echo(
        f"run {outcome.run_id}: {verb} {outcome.destroyed_count} of {outcome.examined} "
        f"message(s) old enough to look at, in {outcome.seconds:.1f} s"
    )
    for rule, count in outcome.destroyed.items():
        click.echo(f"  rule {rule}: {count}")
    for skipped in outcome.skipped.values():
        shown = ", ".join(skipped.queue_ids)
        more = " ..." if skipped.count > len(skipped.queue_ids) else ""
        click.echo(
            f"  skipped {skipped.count} held by hold #{skipped.hold_id} "
            f"(case {skipped.case_ref}): {shown}{more}"
        )


@retention_group.command("records")
@config_options
@click.option(
    "--since", metavar="WHEN", help="Records from WHEN on: YYYY-MM-DD or an ISO time (UTC)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line (for export).")
def records(
    config_file: str | None, data_dir: str | None, since: str | None, as_json: bool
) -> None:
    """List the destruction records: what each batch destroyed, when, under which rule, by whom.

    \b
      phigate retention records --since 2026-12-01
      phigate retention records --json > destruction-records.jsonl
    """
    from gateway.archive.destruction import destruction_log
    from gateway.audit.search import FilterError, parse_when

    try:
        start = parse_when(since) if since is not None else None
    except FilterError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        for record in destruction_log(conn, start):
            if as_json:
                click.echo(json.dumps(record.__dict__))
            else:
                click.echo(
                    f"#{record.id} {when(record.destroyed_at)} run {record.run_id} rule "
                    f"{record.rule}: {record.count} destroyed by {record.actor} ({record.method})"
                )
