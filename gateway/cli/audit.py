"""`phigate audit ...`: verify, search and export the trail, keep its checkpoints elsewhere."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from gateway.audit import checkpoints, cursors, indexer, search, trail
from gateway.audit.checkpoints import Checkpoint, CheckpointFileError
from gateway.audit.formats import SyslogFormat, jsonl_line
from gateway.audit.timeline import timeline
from gateway.audit.verify import verify
from gateway.cli.common import (
    F,
    cli_actor,
    cli_settings,
    config_options,
    fail,
    open_store,
    print_json,
    when,
)
from gateway.config import Settings
from gateway.store.audit_facets import TLS_KINDS
from gateway.store.audit_key import AuditKey, load_audit_key
from gateway.store.database import Database
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
    For a SIEM: `audit export` (JSON lines or RFC 5424 syslog, resumable
    with --cursor), or the server's live forwarder (audit.forward).
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


def _when_option(*decls: str, end: bool) -> Callable[[F], F]:
    what = "before" if end else "at or after"
    return click.option(
        *decls,
        callback=lambda _ctx, _param, value: _parsed_when(value, end),
        metavar="WHEN",
        help=f"Only events {what} WHEN: a date (YYYY-MM-DD"
        + (", the whole day included" if end else "")
        + ") or an ISO time; UTC unless it names an offset.",
    )


def _parsed_when(value: str | None, end: bool) -> float | None:
    if value is None:
        return None
    try:
        return search.parse_when(value, end=end)
    except search.FilterError as exc:
        raise click.BadParameter(str(exc)) from None


def _event_line(e: search.Event) -> str:
    """One event on one line: metadata only, as stored."""
    parts = [f"#{e.id}", when(e.ts), e.event, e.result]
    for label, value in (
        ("queue", e.queue_id),
        ("principal", e.principal),
        ("by", e.actor),
        ("ip", e.client_ip),
        ("size", e.size),
        ("code", e.code),
    ):
        if value is not None and value != "":
            parts.append(f"{label}={value}")
    if e.sender is not None or e.recipients:
        parts.append(f"{e.sender or '<>'} -> {','.join(e.recipients) or '-'}")
    if e.detail:
        parts.append(f"[{e.detail}]")
    return "  ".join(parts)


@audit_group.command("search")
@_when_option("--since", end=False)
@_when_option("--until", end=True)
@click.option("--queue-id", help="Events of this message (and its DSNs and portal mail).")
@click.option(
    "--message-id", help="Events of the messages accepted with this Message-ID, as stored."
)
@click.option("--principal", help="Events of this principal (SMTP AUTH name).")
@click.option("--sender", help="Envelope sender, exactly as stored.")
@click.option("--recipient", help="Events naming this recipient (any case).")
@click.option("--recipient-domain", help="Events naming a recipient at this domain.")
@click.option(
    "--event", "events", multiple=True, help="Event kind, e.g. policy, delivered (repeatable)."
)
@click.option("--rule", help='Policy decisions by this rule id ("defaults": no rule matched).')
@click.option("--policy-version", help="Policy decisions made by this policy version.")
@click.option("--mode", help="Delivery attempts in this mode, e.g. tls, smime, portal.")
@click.option(
    "--tls",
    type=click.Choice(TLS_KINDS),
    help="Delivery attempts whose TLS was verified this way; unverified: TLS without "
    "verification; none: no TLS.",
)
@click.option("--result", help="Result, e.g. ok, failed, queued, deliver, 2.0.0.")
@click.option("--actor", help='Admin changes made by this actor, e.g. "cli:alice", "api:crm".')
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, search.MAX_LIMIT))
@click.option(
    "--after",
    default=0,
    type=click.IntRange(min=0),
    metavar="ID",
    help="Events after event ID (paging).",
)
@click.option(
    "--count", "count_only", is_flag=True, help="Only count the matches, in all and by kind."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document (see docs/audit.md)."
)
@config_options
def audit_search(
    config_file: str | None,
    data_dir: str | None,
    limit: int,
    after: int,
    count_only: bool,
    as_json: bool,
    events: tuple[str, ...],
    **given: Any,
) -> None:
    """Find audit events: every filter given must hold; oldest first, by event id.

    Events the server has not indexed for search yet are indexed first, so
    none is missed (this needs write access to the database).

    \b
      phigate audit search --since 2026-12-01 --recipient-domain gmail.com --event policy
      phigate audit search --principal crm --event delivered --tls none --count
      phigate audit search --rule phi-external --json --after 81234
    """
    filters = search.Filters(events=events, **given)
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        indexer.catch_up(db)  # the events the server has not indexed yet: none is missed
        with db.reading() as conn:
            if count_only:
                counted = search.summary(conn, filters)
            else:
                page = search.search(conn, filters, limit, after)
    if count_only:
        if as_json:
            print_json(counted.as_json())
            return
        for kind, n in counted.by_event.items():
            click.echo(f"{n:>10}  {kind}")
        click.echo(f"{counted.total:>10}  total")
        return
    if as_json:
        print_json({"events": [e.as_json() for e in page.events], "next_after": page.next_after})
        return
    for e in page.events:
        click.echo(_event_line(e))
    if page.next_after is not None:
        click.echo(f"... more: add --after {page.next_after}")
    elif not page.events:
        click.echo("No matching events.")


@audit_group.command("show")
@click.argument("queue_id")
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON.")
@config_options
def audit_show(queue_id: str, as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """The life of one message, from its audit events: accepted, each recipient's
    decision, each delivery attempt with its TLS evidence, DSN, portal events
    and admin actions (with who made them). Metadata only: never content."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        indexer.catch_up(db)  # a DSN is found by the key naming its message
        with db.reading() as conn:
            life = timeline(queue_id, search.of_message(conn, queue_id))
    if as_json:
        print_json(life.as_json())
    if not life.found:
        fail(f"no audit events about {queue_id} (see `phigate audit search`)")
    if as_json:
        return
    about = life.summary()
    phi = {None: "-", True: "yes", False: "no"}[about["phi"]]
    size = about["size"]
    click.echo(f"Message {queue_id}")
    click.echo(
        f"  from {about['sender'] or '<>'} principal={about['principal'] or '-'} "
        f"ip={about['client_ip'] or '-'} size={'-' if size is None else size} "
        f"phi={phi} category={','.join(about['categories']) or '-'}"
    )
    if about["message_id"]:
        click.echo(f"  message-id {about['message_id']}")
    for step in life.steps:
        click.echo(f"  {step.step:<9} {_event_line(step.event)}")


class _Output:
    """Where exported lines go: stdout, or a file appended to (created 0600) and synced."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is None:
            self.stream = sys.stdout
        else:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self.stream = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, line: str) -> None:
        self.stream.write(line + "\n")

    def finish(self) -> None:
        """Everything written is on disk (or taken by the reader of stdout)."""
        self.stream.flush()
        if self.path is not None:
            os.fsync(self.stream.fileno())
            self.stream.close()


def _export_detail(
    fmt: str, cursor: str | None, count: int, ids: tuple[int, int] | None, **bounds: float | None
) -> str:
    words = [f"format={fmt}", f"cursor={cursor or '-'}", f"count={count}"]
    if ids is not None:
        words.append(f"ids={ids[0]}-{ids[1]}")
    words += [f"{name}={when(ts).replace(' ', 'T')}" for name, ts in bounds.items() if ts]
    return " ".join(words)


def _record_export(
    db: Database,
    result: str,
    detail: str,
    cursor: tuple[str, int, int] | None,
) -> None:
    """Move the cursor (name, from, to) and audit the export, in one transaction."""
    with db.transaction() as conn:
        if cursor is not None:
            name, start, end = cursor
            cursors.advance(conn, name, start, end, time.time())
        done = trail.AuditEvent("audit_export", result, detail=detail[:255], actor=cli_actor())
        trail.append(conn, [done])


@audit_group.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "syslog"]),
    default="jsonl",
    show_default=True,
    help="jsonl: one JSON object per event; syslog: RFC 5424 lines (audit.syslog settings).",
)
@_when_option("--from", "--since", "since", end=False)
@_when_option("--to", "until", end=True)
@click.option(
    "--cursor",
    "cursor_name",
    metavar="NAME",
    help="Resume after the last event this named cursor exported, and move it on once "
    "the output is written (created on first use).",
)
@click.option(
    "--output",
    "-o",
    default="-",
    show_default=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Append to this file (created with mode 0600), or - for standard output.",
)
@config_options
def audit_export(
    fmt: str,
    since: float | None,
    until: float | None,
    cursor_name: str | None,
    output: Path,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Write audit events out for a SIEM: the stored metadata of each, its id and hash.

    \b
    Oldest first. With --cursor, each run carries on where the last one
    stopped: the cursor moves only after the output was written and synced,
    so a run that fails repeats events next time rather than losing them
    (at-least-once: drop repeats by the event id). The export is itself
    audited (event audit_export: cursor, count, ids, range; never content).
      phigate audit export --cursor siem --output /var/spool/siem/phigate.jsonl
      phigate audit export --format syslog --from 2026-12-01 --to 2026-12-07
    """
    settings = cli_settings(config_file, data_dir)
    if cursor_name is not None:
        try:
            cursors.check_name(cursor_name)
        except cursors.CursorError as exc:
            raise click.BadParameter(str(exc), param_hint="--cursor") from None
    line = (
        jsonl_line
        if fmt == "jsonl"
        else SyslogFormat(settings.audit.syslog, settings.hostname).line
    )
    filters = search.Filters(since=since, until=until)
    with open_store(settings) as db:
        with db.reading() as conn:
            held = cursors.get(conn, cursor_name) if cursor_name is not None else None
            newest = search.newest_id(conn)  # later events are the next run's
        if held is not None and held.leased(time.time()):
            fail(
                f"cursor {cursor_name!r} is held by the live forwarder ({held.holder}): "
                "give this export a cursor of its own"
            )
        start = held.event_id if held is not None else 0
        count, first, last = 0, 0, start
        try:
            out = _Output(None if str(output) == "-" else output)
            for event in search.every(db.reading, filters, start, newest):
                out.write(line(event))
                count += 1
                first = first or event.id
                last = event.id
            out.finish()
        except OSError as exc:  # disk full, a closed pipe: the cursor stays
            ids = (first, last) if count else None
            detail = _export_detail(fmt, cursor_name, count, ids, since=since, until=until)
            _record_export(db, "failed", detail, None)
            fail(
                f"export stopped after {count} events, writing {output}: "
                f"{exc.strerror or type(exc).__name__}; the cursor did not move"
            )
        ids = (first, last) if count else None
        detail = _export_detail(fmt, cursor_name, count, ids, since=since, until=until)
        moved = (cursor_name, start, last) if cursor_name is not None and count else None
        try:
            _record_export(db, "ok", detail, moved)
        except cursors.CursorError as exc:
            # The events are out all the same: that is on record, the cursor stays.
            _record_export(db, "cursor_conflict", detail, None)
            fail(str(exc))
    where = "standard output" if str(output) == "-" else str(output)
    span = f" (events {first} to {last})" if count else ""
    position = f"; cursor {cursor_name} at event {last}" if cursor_name is not None else ""
    click.echo(f"Exported {count} events{span} to {where}{position}.", err=True)
