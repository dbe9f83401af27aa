"""`phigate queue`: list, show, retry, delete and release queued mail (metadata only)."""

from __future__ import annotations

import time
from typing import Any

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
    when,
)
from gateway.store import queue


@click.group("queue")
def queue_group() -> None:
    """The mail queue: metadata only, never content."""


@queue_group.command("ls")
@click.option("--all", "show_all", is_flag=True, help="Include delivered and bounced jobs.")
@click.option("--limit", default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@config_options
def queue_ls(
    show_all: bool, limit: int, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """List queued deliveries, one line per recipient."""
    settings = cli_settings(config_file, data_dir)
    states = (
        [queue.QUEUED, queue.ACTIVE, queue.HELD, queue.DELIVERED, queue.BOUNCED, queue.DELETED]
        if show_all
        else list(queue.PENDING_STATES)
    )
    with open_store(settings) as db, db.reading() as conn:
        rows = queue.list_jobs(conn, states, limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("Queue is empty.")
    for r in rows:
        last = f"{r['last_code']} {r['last_status']}" if r["last_code"] else "-"
        click.echo(
            f"{r['queue_id']}  {r['state']:<9} tries={r['attempts']:<2} "
            f"next={when(r['next_attempt_at'])}  last={last:<10} "
            f"{r['sender'] or '<>'} -> {r['recipient']}"
        )


@queue_group.command("show")
@click.argument("queue_id")
@click.option("--json", "as_json", is_flag=True)
@config_options
def queue_show(queue_id: str, as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """Show a message's envelope and per-recipient state (no content)."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        info = queue.show_message(conn, queue_id)
    if info is None:
        fail(f"no message {queue_id} in the queue (see `phigate queue ls --all`)")
        return
    if as_json:
        print_json(info)
        return
    click.echo(f"Queue ID:   {info['queue_id']}")
    click.echo(
        f"Received:   {when(info['received_at'])} on {info['listener']} "
        f"from {info['client_ip'] or '-'} principal={info['principal'] or '-'}"
    )
    click.echo(f"Sender:     {info['sender'] or '<>'}")
    click.echo(f"Size:       {info['size']} bytes; content stored: {info['content_stored']}")
    click.echo(f"Message-ID: {info['message_id'] or '-'}")
    recipients: list[dict[str, Any]] = info["recipients"]  # type: ignore[assignment]
    for r in recipients:
        click.echo(
            f"  {r['recipient']}: {r['state']} via={r['route']} rule={r['rule'] or 'defaults'} "
            f"tries={r['attempts']} last={r['last_code'] or '-'} {r['last_status'] or ''} "
            f"{r['last_reply'] or ''}".rstrip()
        )


@queue_group.command("retry")
@click.argument("queue_id", required=False)
@click.option("--all", "retry_all", is_flag=True, help="Retry every deferred message.")
@config_options
def queue_retry(
    queue_id: str | None, retry_all: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Make deferred deliveries of QUEUE_ID (or --all) due now."""
    if not queue_id and not retry_all:
        fail("give a QUEUE_ID or --all", EXIT_USAGE)
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.transaction() as conn:
        now = time.time()
        count = queue.retry_now(conn, queue_id, now)
        if count:
            what = AuditEvent(
                event="retried",
                result="admin",
                queue_id=queue_id,
                detail=f"deliveries={count}" + ("" if queue_id else " all"),
                ts=now,
                actor=cli_actor(),
            )
            trail.append(conn, [what])
    click.echo(f"{count} deliver{'y' if count == 1 else 'ies'} due now.")


@queue_group.command("delete")
@click.argument("queue_id")
@config_options
def queue_delete(queue_id: str, config_file: str | None, data_dir: str | None) -> None:
    """Cancel a message's pending deliveries and destroy its content (no DSN is sent)."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.transaction() as conn:
        if not queue.message_exists(conn, queue_id):
            fail(f"no message {queue_id} in the queue (see `phigate queue ls`)")
        recipients = queue.delete_message(conn, queue_id, time.time())
        trail.append(
            conn,
            [
                AuditEvent(
                    event="deleted",
                    result="admin",
                    queue_id=queue_id,
                    recipients=tuple(recipients),
                    actor=cli_actor(),
                )
            ],
        )
    click.echo(
        f"Deleted {queue_id}: {len(recipients)} pending deliveries cancelled, content destroyed."
    )


@queue_group.command("release")
@click.argument("queue_id")
@config_options
def queue_release(queue_id: str, config_file: str | None, data_dir: str | None) -> None:
    """Release a message the policy held: its held recipients are delivered now.

    Find held messages with `phigate queue ls` (state "held"). To refuse a
    held message instead, use `phigate queue delete QUEUE_ID`.
    """
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.transaction() as conn:
        if not queue.message_exists(conn, queue_id):
            fail(f"no message {queue_id} in the queue (see `phigate queue ls`)")
        recipients = queue.release_held(conn, queue_id, time.time())
        if not recipients:
            fail(f"message {queue_id} has no held recipients (see `phigate queue show {queue_id}`)")
        trail.append(
            conn,
            [
                AuditEvent(
                    event="released",
                    result="admin",
                    queue_id=queue_id,
                    recipients=tuple(recipients),
                    actor=cli_actor(),
                )
            ],
        )
    click.echo(f"Released {queue_id}: {len(recipients)} held recipient(s) queued for delivery.")
