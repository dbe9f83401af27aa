"""`phigate consent ...`: the consent registry from the command line."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

import click
from sqlalchemy import Connection

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
from gateway.config import ConsentConfig
from gateway.consent import csvio, registry
from gateway.consent.purpose import MARKETING, known_purposes
from gateway.consent.registry import ConsentError, Grant
from gateway.store.database import Database

T = TypeVar("T")

_DURATION = re.compile(r"(\d{1,5})([dw])")
_PURPOSE_HELP = "marketing, or marketing/<sub-purpose> as configured under consent.purposes."


def _usage(exc: ConsentError | ValueError) -> NoReturn:
    fail(str(exc), EXIT_USAGE)


def _write(db: Database, fn: Callable[[Connection], T]) -> T:
    """Run fn in one write transaction; a ConsentError is a usage error (nothing written)."""
    try:
        with db.transaction() as conn:
            return fn(conn)
    except ConsentError as exc:
        _usage(exc)


def _states_now(
    db: Database, config: ConsentConfig, addresses: list[str], purpose: str
) -> dict[str, str]:
    with db.reading() as conn:
        return registry.states(conn, addresses, purpose, time.time(), config)


def _date(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return csvio.parse_time(text)
    except ValueError as exc:
        fail(f"{option}: {exc}", EXIT_USAGE)


def _duration(text: str) -> float:
    found = _DURATION.fullmatch(text.strip())
    if not found:
        fail(f"--expires-in: {text!r} is not a duration (write e.g. 365d or 52w)", EXIT_USAGE)
    return int(found.group(1)) * (7 if found.group(2) == "w" else 1) * 86400.0


def _purpose(config: ConsentConfig, text: str) -> str:
    try:
        return registry.validate_purpose(config, text)
    except ConsentError as exc:
        _usage(exc)


def _show_states(states: dict[str, str], purpose: str) -> None:
    for address, state in states.items():
        click.echo(f"  {address}: {state} for {purpose}")


@click.group("consent")
def consent_group() -> None:
    """Marketing authorizations, revocations and opt-outs (the consent registry).

    \b
    HIPAA needs a patient's written authorization before their PHI is used for
    marketing, and lets them revoke it at any time; CAN-SPAM needs a working
    opt-out. The registry keeps that record, append-only: every change is a new
    record and an audit event; nothing is changed or deleted. The policy
    condition `consent:` reads the state of each recipient for the message's
    purpose: granted, none, revoked, expired or opted_out. An opt-out always
    wins; only `phigate consent opt-in` (an admin's decision) cancels it.

    \b
      phigate consent grant pat@example.org --purpose marketing --expires-in 365d \\
          --source ehr --document-ref EHR-FORM-1234
      phigate consent show pat@example.org
      phigate consent import authorizations.csv --dry-run
    """


@consent_group.command("grant")
@click.argument("address")
@click.option("--purpose", required=True, help=_PURPOSE_HELP)
@click.option("--patient-id", metavar="ID", help="The patient's id; links ADDRESS to it.")
@click.option("--granted-at", metavar="DATE", help="When it was signed (ISO 8601; default: now).")
@click.option("--expires", metavar="DATE", help="When it ends (ISO 8601; default: never).")
@click.option("--expires-in", metavar="DURATION", help="Or: ends this long after --granted-at.")
@click.option("--source", type=click.Choice(registry.SOURCES), default="admin", show_default=True)
@click.option(
    "--document-ref", metavar="REF", help="Where the signed form is kept (never the form)."
)
@click.option("--remuneration", is_flag=True, help="A third party pays for the marketing ...")
@click.option("--disclosed", is_flag=True, help="... and the signed form discloses that.")
@click.option("--json", "as_json", is_flag=True, help="Print the record id and state as JSON.")
@config_options
def consent_grant(
    address: str,
    purpose: str,
    patient_id: str | None,
    granted_at: str | None,
    expires: str | None,
    expires_in: str | None,
    source: str,
    document_ref: str | None,
    remuneration: bool,
    disclosed: bool,
    as_json: bool,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Record that ADDRESS authorized marketing mail for a purpose.

    An authorization for "marketing" covers every sub-purpose that is not
    paid for by a third party (remunerated: true in the settings); for those,
    record one naming the sub-purpose, with --remuneration --disclosed.
    """
    if expires and expires_in:
        fail("give --expires or --expires-in, not both", EXIT_USAGE)
    settings = cli_settings(config_file, data_dir)
    config = settings.consent
    now = time.time()
    start = _date(granted_at, "--granted-at") or now
    end = _date(expires, "--expires")
    if expires_in:
        end = start + _duration(expires_in)
    requested = Grant(
        address,
        patient_id,
        _purpose(config, purpose),
        start,
        end,
        source,
        document_ref,
        remuneration,
        disclosed,
    )
    try:
        record = registry.check_grant_for(config, requested)
    except ConsentError as exc:
        _usage(exc)
    assert record.address is not None
    with open_store(settings) as db:
        record_id = _write(
            db, lambda conn: registry.grant(conn, record, actor=cli_actor(), now=now)
        )
        state = _states_now(db, config, [record.address], record.purpose)[record.address]
    if as_json:
        print_json({"id": record_id, "address": record.address, "state": state})
        return
    until = f" until {when(record.expires_at)}" if record.expires_at else ""
    click.echo(
        f"Recorded authorization {record_id}: {record.address} for {record.purpose} from "
        f"{when(record.granted_at)}{until}. State now: {state}."
    )
    if state != "granted":
        click.echo(f"phigate: note: {record.address} is {state} for {record.purpose}", err=True)


@consent_group.command("revoke")
@click.argument("address", required=False)
@click.option("--patient-id", metavar="ID", help="Revoke for every address of this patient.")
@click.option("--purpose", required=True, help=_PURPOSE_HELP)
@click.option("--revoked-at", metavar="DATE", help="When it was revoked (default: now).")
@click.option("--source", type=click.Choice(registry.SOURCES), default="admin", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the states after it as JSON.")
@config_options
def consent_revoke(
    address: str | None,
    patient_id: str | None,
    purpose: str,
    revoked_at: str | None,
    source: str,
    as_json: bool,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Record that ADDRESS (or every address of --patient-id) revoked its authorization.

    A revocation for "marketing" covers every sub-purpose. A revocation by
    patient id also covers addresses linked to the patient later.
    """
    if address is None and patient_id is None:
        fail("name an ADDRESS or give --patient-id", EXIT_USAGE)
    settings = cli_settings(config_file, data_dir)
    config = settings.consent
    now = time.time()
    chosen = _purpose(config, purpose)
    at = _date(revoked_at, "--revoked-at") or now

    def write(conn: Connection) -> list[str]:
        registry.revoke(
            conn,
            address=address,
            patient_id=patient_id,
            purpose=chosen,
            revoked_at=at,
            source=source,
            actor=cli_actor(),
            now=now,
        )
        covered = [] if patient_id is None else registry.linked_addresses(conn, patient_id)
        return sorted({*covered, *([registry.check_address(address)] if address else [])})

    with open_store(settings) as db:
        covered = _write(db, write)
        states = _states_now(db, config, covered, chosen)
    if as_json:
        print_json({"purpose": chosen, "states": states})
        return
    who = address or f"patient {patient_id}"
    click.echo(f"Recorded the revocation of {chosen} for {who}.")
    if not covered:
        click.echo("No address is linked to the patient yet; it covers them once one is.")
    _show_states(states, chosen)


@consent_group.command("opt-out")
@click.argument("address")
@click.option("--purpose", default=MARKETING, show_default=True, help=_PURPOSE_HELP)
@click.option("--reference", metavar="REF", help="Where the request came from (e.g. a ticket).")
@click.option("--json", "as_json", is_flag=True, help="Print whether it was recorded, as JSON.")
@config_options
def consent_opt_out(
    address: str,
    purpose: str,
    reference: str | None,
    as_json: bool,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Record that ADDRESS wants no more marketing mail (for --purpose).

    An opt-out wins over every authorization and stays until an admin runs
    `phigate consent opt-in`. An opt-out for "marketing" covers every
    sub-purpose.
    """
    settings = cli_settings(config_file, data_dir)
    chosen = _purpose(settings.consent, purpose)
    now = time.time()
    with open_store(settings) as db:
        recorded = _write(
            db,
            lambda conn: registry.opt_out(
                conn,
                address=address,
                purpose=chosen,
                source="admin",
                actor=cli_actor(),
                now=now,
                reference=reference,
            ),
        )
    if as_json:
        print_json({"recorded": recorded, "purpose": chosen})
    elif recorded:
        click.echo(f"Recorded the opt-out of {address} from {chosen}.")
    else:
        click.echo(f"{address} has already opted out of {chosen}; nothing recorded.")


@consent_group.command("opt-in")
@click.argument("address")
@click.option("--purpose", required=True, help=_PURPOSE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the state after it as JSON.")
@config_options
def consent_opt_in(
    address: str, purpose: str, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Cancel the opt-outs of ADDRESS for exactly --purpose (an admin's decision, audited).

    Do this only on the recipient's own request. It does not authorize
    anything: marketing still needs a valid authorization. An opt-out for
    "marketing" still covers "marketing/x" after an opt-in for "marketing/x".
    Exits 1 when there is no such opt-out.
    """
    settings = cli_settings(config_file, data_dir)
    chosen = _purpose(settings.consent, purpose)
    now = time.time()
    with open_store(settings) as db:
        cancelled = _write(
            db,
            lambda conn: registry.opt_in(
                conn, address=address, purpose=chosen, source="admin", actor=cli_actor(), now=now
            ),
        )
        stored = registry.check_address(address)
        state = _states_now(db, settings.consent, [stored], chosen)[stored]
    if as_json:
        print_json({"recorded": cancelled, "purpose": chosen, "state": state})
    elif cancelled:
        click.echo(f"Cancelled the opt-out of {stored} from {chosen}. State now: {state}.")
    if not cancelled:
        hint = ""
        if state == "opted_out":
            hint = f"; an opt-out for {MARKETING} covers it: opt in to that instead"
        fail(f"{stored} has no opt-out for {chosen} to cancel{hint}")


def _history_line(record: dict[str, Any]) -> str:
    kind = record["kind"]
    who = record["address"] or f"patient {record['patient_id']}"
    parts = [f"{when(record['recorded_at'])}  {kind:<8} {record['purpose']:<24} {who}"]
    if record["patient_id"] and record["address"]:
        parts.append(f"patient {record['patient_id']}")
    if kind in (registry.GRANT, registry.REVOKE):
        parts.append(f"effective {when(record['effective_at'])}")
    if record["expires_at"]:
        parts.append(f"expires {when(record['expires_at'])}")
    if record["remuneration"]:
        disclosed = "disclosed" if record["remuneration_disclosed"] else "NOT disclosed"
        parts.append(f"paid by a third party ({disclosed})")
    if record["document_ref"]:
        parts.append(f"ref {record['document_ref']}")
    parts.append(f"{record['source']}, by {record['actor']}")
    return "; ".join(parts)


@consent_group.command("show")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Print states and history as JSON.")
@config_options
def consent_show(
    address: str, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """The state of ADDRESS for every configured purpose, its linked patient ids and
    its history (its own records, its patients' and its opt-outs), oldest first."""
    settings = cli_settings(config_file, data_dir)
    config = settings.consent
    try:
        stored = registry.check_address(address)
    except ConsentError as exc:
        _usage(exc)
    now = time.time()
    with open_store(settings) as db, db.reading() as conn:
        states = {
            purpose: registry.states(conn, [stored], purpose, now, config)[stored]
            for purpose in known_purposes(config)
        }
        patients = registry.linked_patients(conn, stored)
        history = registry.history(conn, address=stored)
    if as_json:
        print_json(
            {
                "address": stored,
                "states": states,
                "patient_ids": patients,
                "history": [csvio.record_json(r) for r in history],
            }
        )
        return
    click.echo(stored)
    for purpose, state in states.items():
        click.echo(f"  {purpose:<32} {state}")
    if patients:
        click.echo(f"Patient ids: {', '.join(patients)}")
    click.echo("History (oldest first):" if history else "No records.")
    for record in history:
        click.echo(f"  {_history_line(record)}")


@consent_group.command(
    "import", epilog=csvio.COLUMNS_HELP, context_settings={"max_content_width": 100}
)
@click.argument("file", metavar="FILE.csv", type=click.Path(dir_okay=False))
@click.option("--partial", is_flag=True, help="Import the good rows even if some are wrong.")
@click.option("--dry-run", is_flag=True, help="Check every row; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@config_options
def consent_import(
    file: str,
    partial: bool,
    dry_run: bool,
    as_json: bool,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Import consent records from a CSV file (e.g. an EHR export), in file order.

    Every row is checked first; wrong rows are reported as FILE:LINE: column
    X: what is wrong. Unless --partial, nothing is imported when any row is
    wrong. Records are written in one transaction with one audit event.
    Exit status: 0 all rows good, 1 some rows wrong, 2 the file is unusable.
    """
    settings = cli_settings(config_file, data_dir)
    try:
        read = csvio.read_changes(Path(file), settings.consent)
    except csvio.CsvFileError as exc:
        fail(str(exc), EXIT_USAGE)
    changes = [change for _, change in read.changes]
    counts = dict.fromkeys(registry.KINDS, 0)
    write = bool(changes) and not dry_run and (partial or not read.errors)
    if write:
        with open_store(settings) as db:
            counts = _write(
                db,
                lambda conn: registry.import_changes(
                    conn, changes, actor=cli_actor(), now=time.time()
                ),
            )
    if as_json:
        print_json(
            {
                "file": file,
                "good_rows": len(changes),
                "errors": [
                    {"line": e.line, "column": e.column, "error": e.message} for e in read.errors
                ],
                "imported": counts,
                "dry_run": dry_run,
            }
        )
    else:
        for error in read.errors:
            click.echo(error.text(file), err=True)
        click.echo(_import_summary(file, len(changes), len(read.errors), counts, dry_run, write))
    if read.errors:
        sys.exit(1)


def _import_summary(
    file: str, good: int, bad: int, counts: dict[str, int], dry_run: bool, written: bool
) -> str:
    checked = f"{good + bad} rows checked, {bad} wrong"
    if dry_run:
        return f"{file}: {checked}; dry run, nothing written."
    if not written:
        fix = " (fix them, or import the good rows with --partial)" if bad else ""
        return f"{file}: {checked}; nothing imported{fix}."
    kinds = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    total = sum(counts.values())
    return f"{file}: {checked}; imported {total} record{'s' * (total != 1)} ({kinds})."


def _write_json(out: TextIO, records: Iterator[dict[str, Any]]) -> int:
    """A JSON array, one record per line, written as it is read."""
    count = 0
    out.write("[")
    for record in records:
        out.write(("," if count else "") + "\n" + json.dumps(csvio.record_json(record)))
        count += 1
    out.write("\n]\n")
    return count


@consent_group.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array instead of CSV.")
@config_options
def consent_export(
    output: str | None, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Write every record of the registry, history included, in recording order.

    The CSV has the columns `phigate consent import` reads (see its --help),
    so an export imports into another store as the same states. It holds
    addresses and patient ids: keep it as you keep the database.
    """
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        records = registry.export_records(conn)
        writer = _write_json if as_json else csvio.write_records
        if output is None:
            writer(sys.stdout, records)
            return
        try:
            with open(output, "w", encoding="utf-8", newline="") as out:
                count = writer(out, records)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")
    click.echo(f"Exported {count} records to {output}.", err=True)
