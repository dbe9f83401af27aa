"""`phigate hold`: legal holds that keep archived mail from destruction."""

from __future__ import annotations

import time
from typing import Any

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


@click.group("hold")
def hold_group() -> None:
    """Legal holds: archived mail a hold covers is never destroyed, whatever its
    retention rule, until every hold covering it is released. See docs/retention.md.

    A selector says what a hold covers; every part given must hold. Placing
    and releasing are audited with who did it.

    \b
      phigate hold add --case "2026-CV-0142" --reason "litigation" --principal ehr1 \\
          --since 2026-01-01 --until 2026-07-01
      phigate hold add --case INV-7 --reason "OCR inquiry" --queue-id 18C2F0A9B3D4E5F6A7B8
      phigate hold ls                 # standing holds; --all with released ones
      phigate hold show 3
      phigate hold release 3 --reason "case closed"
    """


def _hold_json(hold: Any, covered: tuple[int, int] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = hold.as_json()
    if covered is not None:
        data["covers"] = {"messages": covered[0], "not_destroyed": covered[1]}
    return data


def _when(value: str | None, end: bool, option: str) -> float | None:
    from gateway.audit.search import FilterError, parse_when

    if value is None:
        return None
    try:
        return parse_when(value, end=end)
    except FilterError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@hold_group.command("add")
@config_options
@click.option("--case", "case_ref", required=True, help="The case or matter reference.")
@click.option("--reason", required=True, help="Why the hold is placed.")
@click.option("--queue-id", "queue_ids", multiple=True, help="This message (repeatable).")
@click.option("--principal", help="Messages this principal (SMTP AUTH name) sent.")
@click.option("--sender", help="Messages with this envelope sender.")
@click.option("--recipient", help="Messages with this recipient.")
@click.option("--domain", help="Messages from or to this domain.")
@click.option(
    "--since", metavar="WHEN", help="Messages received at or after WHEN (YYYY-MM-DD or ISO, UTC)."
)
@click.option(
    "--until",
    metavar="WHEN",
    help="Messages received before WHEN (a date: the whole day included).",
)
@click.option("--category", help="Messages of this category (treatment, payment, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print the hold as JSON.")
def add(
    config_file: str | None,
    data_dir: str | None,
    case_ref: str,
    reason: str,
    queue_ids: tuple[str, ...],
    principal: str | None,
    sender: str | None,
    recipient: str | None,
    domain: str | None,
    since: str | None,
    until: str | None,
    category: str | None,
    as_json: bool,
) -> None:
    """Place a legal hold on the archived messages a selector covers (at least one of
    --queue-id, --principal, --sender, --recipient, --domain, --since, --until, --category).

    It covers messages archived later too, as long as it stands.

    \b
      phigate hold add --case 2026-CV-0142 --reason "litigation" --domain clinic.example
      phigate hold add --case INV-7 --reason "OCR inquiry" --queue-id ID1 --queue-id ID2
      phigate hold add --case A-3 --reason "audit" --principal ehr1 --since 2026-01-01 --json
    """
    from gateway.archive import holds
    from gateway.policy.model import CATEGORIES

    if category is not None and category not in CATEGORIES:
        raise click.BadParameter(
            f"{category!r} is not a category: write one of {', '.join(CATEGORIES)}",
            param_hint="--category",
        )
    selector = holds.Selector(
        queue_ids=tuple(dict.fromkeys(queue_ids)),
        principal=principal,
        sender=sender,
        recipient=recipient,
        domain=domain,
        since=_when(since, False, "--since"),
        until=_when(until, True, "--until"),
        category=category,
    )
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                placed = holds.place(conn, case_ref, reason, selector, cli_actor(), time.time())
        except holds.HoldError as exc:
            fail(str(exc), EXIT_USAGE)
        with db.reading() as conn:
            covered = holds.covered_count(conn, placed)
    if as_json:
        print_json(_hold_json(placed, covered))
        return
    click.echo(
        f"Placed legal hold #{placed.id} (case {case_ref}): it covers {covered[0]} archived "
        f"message(s) now, {covered[1]} not destroyed, and any archived later that match."
    )


@hold_group.command("ls")
@config_options
@click.option("--all", "released_too", is_flag=True, help="Released holds too.")
@click.option("--json", "as_json", is_flag=True, help="Print the holds as JSON.")
def ls(config_file: str | None, data_dir: str | None, released_too: bool, as_json: bool) -> None:
    """List the standing legal holds (with --all, released ones too)."""
    from gateway.archive import holds

    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        found = holds.listing(conn, released_too=released_too)
    if as_json:
        print_json([_hold_json(h) for h in found])
        return
    if not found:
        click.echo("No legal holds." if released_too else "No standing legal holds.")
    for hold in found:
        state = "standing" if hold.standing else f"released {when(hold.released_at)}"
        click.echo(
            f"#{hold.id} case {hold.case_ref}: {state}; placed {when(hold.created_at)} by "
            f"{hold.created_by}; covers {hold.selector.as_json()}"
        )


@hold_group.command("show")
@click.argument("hold_id", type=int)
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print the hold as JSON.")
def show(hold_id: int, config_file: str | None, data_dir: str | None, as_json: bool) -> None:
    """One hold: its case, reason, selector, who placed (and released) it, what it covers."""
    from gateway.archive import holds

    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        found = holds.get(conn, hold_id)
        if found is None:
            fail(f"no legal hold #{hold_id}: `phigate hold ls --all` lists them")
        covered = holds.covered_count(conn, found)
    if as_json:
        print_json(_hold_json(found, covered))
        return
    click.echo(f"legal hold #{found.id}, case {found.case_ref}")
    click.echo(f"  reason: {found.reason}")
    click.echo(f"  selector: {found.selector.as_json()}")
    click.echo(f"  placed {when(found.created_at)} UTC by {found.created_by}")
    if found.standing:
        click.echo("  standing")
    else:
        click.echo(
            f"  released {when(found.released_at)} UTC by {found.released_by}: "
            f"{found.release_reason}"
        )
    click.echo(f"  covers {covered[0]} archived message(s), {covered[1]} not destroyed")


@hold_group.command("release")
@click.argument("hold_id", type=int)
@config_options
@click.option("--reason", required=True, help="Why the hold is released.")
@click.option("--json", "as_json", is_flag=True, help="Print the released hold as JSON.")
def release(
    hold_id: int, config_file: str | None, data_dir: str | None, reason: str, as_json: bool
) -> None:
    """Release a hold: what it covered may be destroyed by the next retention run, unless
    another standing hold covers it too."""
    from gateway.archive import holds

    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                released = holds.release(conn, hold_id, reason, cli_actor(), time.time())
        except holds.HoldError as exc:
            fail(str(exc))
    if as_json:
        print_json(_hold_json(released))
        return
    click.echo(f"Released legal hold #{hold_id} (case {released.case_ref}).")
