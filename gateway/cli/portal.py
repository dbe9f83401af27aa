"""`phigate portal`: list, show, recall and extend messages held for portal pickup."""

from __future__ import annotations

import time
from typing import Any, NoReturn

import click

from gateway.audit import history
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
from gateway.mail.addresses import AddressError, normalise
from gateway.portal import lifecycle
from gateway.portal.lifecycle import MAX_EXTEND_DAYS, LifecycleError, NothingOpen, UnknownMessage
from gateway.store import portal
from gateway.store.portal import Copy


@click.group("portal")
def portal_group() -> None:
    """Messages held for portal pickup: one sealed copy per recipient (metadata only).

    A copy is waiting (notice sent), opened (read at least once) or replied
    while its recipient can read it; expired or recalled once closed, and then
    its content is destroyed. An admin can recall or extend a copy but never
    read it: that needs the recipient's link. See docs/portal.md.

    \b
      phigate portal ls                          # newest first
      phigate portal ls --state waiting --json
      phigate portal show QUEUE_ID               # each copy and its access history
      phigate portal recall QUEUE_ID             # unreadable now, content destroyed
      phigate portal recall QUEUE_ID --recipient pat@example.org
      phigate portal extend QUEUE_ID --days 7    # 7 more days to pick it up
    """


def _summary(copy: Copy, now: float) -> dict[str, Any]:
    return {
        "queue_id": copy.queue_id,
        "recipient": copy.recipient,
        "state": copy.shown_state(now),
        "created_at": copy.created_at,
        "expires_at": copy.expires_at,
        "views": copy.views,
        "downloads": copy.downloads,
    }


def _details(copy: Copy, now: float) -> dict[str, Any]:
    """What `show` tells of a copy: metadata, never content, hashes or codes."""
    return {
        **_summary(copy, now),
        "sender": copy.sender,
        "principal": copy.principal,
        "access": copy.access,
        "show_sender": copy.show_sender,
        "read_receipt": copy.read_receipt,
        "notice_queue_id": copy.notice_queue_id,
        "opened_at": copy.opened_at,
        "replied_at": copy.replied_at,
        "closed_at": copy.closed_at,
        "codes_sent": copy.codes_sent,
        "failed_codes": copy.failed_codes,
        "locked_until": copy.locked_until,
    }


def _recipient(address: str | None) -> str | None:
    if address is None:
        return None
    try:
        return normalise(address)
    except AddressError as exc:
        fail(f"--recipient {address!r} is not an address: {exc}", EXIT_USAGE)


def _refused(queue_id: str, exc: LifecycleError) -> NoReturn:
    if isinstance(exc, UnknownMessage):
        fail(f"{exc} (see `phigate portal ls`)")
    if isinstance(exc, NothingOpen):
        states = "".join(f"\n  {recipient}: {state}" for recipient, state in exc.closed)
        fail(f"{exc}{states}\n(see `phigate portal show {queue_id}`)")
    fail(str(exc), EXIT_USAGE)


@portal_group.command("ls")
@click.option(
    "--state",
    type=click.Choice(portal.STATES),
    help="Only copies in this state (a copy past its time counts as expired).",
)
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the copies as JSON.")
@config_options
def portal_ls(
    state: str | None, limit: int, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """List portal copies, newest first, one line per recipient.

    \b
    Columns: queue id, state, created, expires (UTC), views, downloads, recipient.
      phigate portal ls --state opened
      phigate portal ls --json --limit 50
    """
    settings = cli_settings(config_file, data_dir)
    now = time.time()
    with open_store(settings) as db, db.reading() as conn:
        copies = portal.listing(conn, limit, (state, now) if state else None)
    rows = [_summary(c, now) for c in copies]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("No portal messages" + (f" in state {state}." if state else "."))
        return
    for r in rows:
        click.echo(
            f"{r['queue_id']}  {r['state']:<9} created={when(r['created_at'])}  "
            f"expires={when(r['expires_at'])}  views={r['views']:<3} "
            f"downloads={r['downloads']:<3} {r['recipient']}"
        )


@portal_group.command("show")
@click.argument("queue_id")
@click.option("--json", "as_json", is_flag=True, help="Print copies and history as JSON.")
@config_options
def portal_show(
    queue_id: str, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Show each copy of QUEUE_ID and its access history (no content, no hashes).

    The history is the audit trail's portal events for the message: links
    opened, codes sent and failed, lockouts, views, downloads, replies,
    expiry, recall and extension, with the client address where there was one.
    """
    settings = cli_settings(config_file, data_dir)
    now = time.time()
    with open_store(settings) as db, db.reading() as conn:
        copies = portal.of_message(conn, queue_id)
        events = history.of_message(conn, queue_id, "portal_")
    if not copies:
        fail(f"no portal message {queue_id} (see `phigate portal ls`)")
    if as_json:
        print_json(
            {
                "queue_id": queue_id,
                "copies": [_details(c, now) for c in copies],
                "history": [
                    {
                        "ts": e.ts,
                        "event": e.event,
                        "result": e.result,
                        "recipients": list(e.recipients),
                        "client_ip": e.client_ip,
                        "detail": e.detail,
                    }
                    for e in events
                ],
            }
        )
        return
    click.echo(f"Queue ID: {queue_id}")
    for c in copies:
        d = _details(c, now)
        click.echo(f"  {d['recipient']}: {d['state']}")
        click.echo(f"    from {d['sender'] or '<>'} principal={d['principal'] or '-'}")
        click.echo(
            f"    created {when(d['created_at'])}  expires {when(d['expires_at'])}  "
            f"opened {when(d['opened_at'])}  replied {when(d['replied_at'])}  "
            f"closed {when(d['closed_at'])}"
        )
        click.echo(
            f"    access={d['access']} views={d['views']} downloads={d['downloads']} "
            f"codes_sent={d['codes_sent']} failed_codes={d['failed_codes']} "
            f"locked_until={when(d['locked_until'])} read_receipt={d['read_receipt']} "
            f"show_sender={d['show_sender']} notice={d['notice_queue_id'] or '-'}"
        )
    click.echo("History:" if events else "History: none recorded.")
    for e in events:
        click.echo(
            f"  {when(e.ts)}  {e.event:<20} {e.result:<8} {', '.join(e.recipients) or '-'}  "
            f"client={e.client_ip or '-'}  {e.detail or ''}".rstrip()
        )


@portal_group.command("recall")
@click.argument("queue_id")
@click.option("--recipient", help="Recall only this recipient's copy (default: every copy).")
@config_options
def portal_recall(
    queue_id: str, recipient: str | None, config_file: str | None, data_dir: str | None
) -> None:
    """Recall QUEUE_ID: its open copies are unreadable at once and their content destroyed.

    A recipient who opens the link afterwards is told the message was
    recalled. The recall is an audit event (portal_recalled, by=cli:<OS user>). It
    cannot be undone: to let the recipient read it again, send it again.

    \b
      phigate portal recall 19A2B3C4D5E6F7A8B9C0D
      phigate portal recall 19A2B3C4D5E6F7A8B9C0D --recipient pat@example.org
    """
    address = _recipient(recipient)
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                recalled = lifecycle.recall(conn, queue_id, address, cli_actor(), time.time())
        except LifecycleError as exc:
            _refused(queue_id, exc)
    click.echo(
        f"Recalled {queue_id} for {', '.join(c.recipient for c in recalled)}: "
        "unreadable now, content destroyed."
    )


@portal_group.command("extend")
@click.argument("queue_id")
@click.option(
    "--days",
    required=True,
    type=click.IntRange(1, MAX_EXTEND_DAYS),
    help=f"Days added to each open copy's expiry (1-{MAX_EXTEND_DAYS}).",
)
@click.option("--recipient", help="Extend only this recipient's copy (default: every open copy).")
@config_options
def portal_extend(
    queue_id: str,
    days: int,
    recipient: str | None,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Give the recipients of QUEUE_ID more time: expiry moves N days later.

    Only open copies (waiting, opened, replied) can be extended; an expired or
    recalled copy's content is destroyed already. Each change is an audit
    event (portal_extended, with the old and new dates and who asked).

    \b
      phigate portal extend 19A2B3C4D5E6F7A8B9C0D --days 14
    """
    address = _recipient(recipient)
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                moved = lifecycle.extend(conn, queue_id, address, days, cli_actor(), time.time())
        except LifecycleError as exc:
            _refused(queue_id, exc)
    for copy, expires_at in moved:
        click.echo(
            f"Extended {queue_id} for {copy.recipient}: expires {when(expires_at)} UTC "
            f"(was {when(copy.expires_at)})."
        )
