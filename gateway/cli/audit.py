"""`phigate audit ...`: verify the audit trail and keep its checkpoints elsewhere."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from gateway.audit import checkpoints, trail
from gateway.audit.checkpoints import Checkpoint, CheckpointFileError
from gateway.audit.verify import verify
from gateway.cli.common import cli_settings, config_options, fail, open_store, print_json, when
from gateway.config import Settings
from gateway.store.audit_key import AuditKey, load_audit_key
from gateway.store.keyring import KeyringError

_PROBLEMS_SHOWN = 20
_PROBLEMS_IN_JSON = 1000


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit trail (metadata only).

    \b
    Each event is chained to the one before with HMAC-SHA256 under the audit
    key (keys/audit.key, outside the database); the server records signed
    checkpoints (event count and head) as it runs. Keep exported checkpoints
    somewhere the phigate host cannot write:
      phigate audit checkpoint --output /secure/phigate-checkpoint.json
      phigate audit verify --checkpoint /secure/phigate-checkpoint.json
    """


def _audit_key(settings: Settings) -> AuditKey:
    try:
        return load_audit_key(settings.path(settings.keys_dir))
    except KeyringError as exc:
        fail(str(exc))


@audit_group.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also hold the trail against this exported checkpoint (from `audit checkpoint`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@config_options
def audit_verify(
    checkpoint_file: Path | None, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Recompute the chain and hold it against every checkpoint.

    Exit 1 naming the first bad event if any event was altered, removed,
    inserted or re-chained without the audit key, or if the trail is shorter
    than a checkpoint recorded (truncated). Events written after the newest
    checkpoint and then removed leave no trace: that is why the server writes
    checkpoints as it runs, and why exported ones are worth keeping.
    """
    settings = cli_settings(config_file, data_dir)
    key = _audit_key(settings)
    exported: Checkpoint | None = None
    if checkpoint_file is not None:
        try:
            exported = checkpoints.read_file(checkpoint_file)
        except CheckpointFileError as exc:
            fail(str(exc))
    with open_store(settings) as db, db.reading() as conn:
        report = verify(conn, key, exported)
    if as_json:
        print_json(report.as_json(_PROBLEMS_IN_JSON))
    else:
        ordered = report.ordered_problems()
        for problem in ordered[:_PROBLEMS_SHOWN]:
            where = "trail" if problem.event_id is None else f"event {problem.event_id}"
            click.echo(f"{where}: {problem.reason}")
        if len(ordered) > _PROBLEMS_SHOWN:
            click.echo(f"... and {len(ordered) - _PROBLEMS_SHOWN} more (see --json)")
        for note in report.notes:
            click.echo(note)
    if not report.ok:
        what = "truncated" if report.truncated else "damaged"
        fail(
            f"audit trail {what}: {len(report.problems)} problem(s) in {report.events} events; "
            f"first bad event: {report.first_bad_event}"
        )
    if not as_json:
        anchor = report.checkpoint
        against = f", up to {anchor.label} ({anchor.count} events)" if anchor else ""
        click.echo(f"Audit trail intact: {report.events} events{against}.")


@audit_group.command("checkpoint")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the checkpoint to this file (JSON), to keep it elsewhere.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checkpoint as JSON.")
@config_options
def audit_checkpoint(
    output: Path | None, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Record a signed checkpoint of the trail now, and export it.

    The checkpoint (newest event id, its hash, the number of events, the time,
    signed with the audit key) is stored in the database and printed; with
    --output it is also written to a file for `audit verify --checkpoint`.
    """
    settings = cli_settings(config_file, data_dir)
    _audit_key(settings)  # a clear error before the store is touched
    with open_store(settings) as db, db.transaction() as conn:
        made = trail.checkpoint(conn, time.time())
    assert made is not None  # without a due rule, a checkpoint is always made
    exported = made.exported()
    if output is not None:
        try:
            output.write_text(json.dumps(exported, indent=2) + "\n")
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror}")
    if as_json:
        print_json(exported)
        return
    click.echo(
        f"Checkpoint #{made.id} at {when(made.created_at)}: {made.count} events up to event "
        f"{made.event_id}, hash {made.hash}."
    )
    if output is not None:
        click.echo(f"Written to {output}; keep it where the phigate host cannot change it.")
