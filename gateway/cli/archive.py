"""`phigate archive`: search, view and export archived mail, as an auditor with a reason."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from gateway.archive import access, bundle, export, holds, requests, search
from gateway.archive.access import AccessRefused
from gateway.archive.bundle import CertificateError, Provenance
from gateway.archive.requests import Request
from gateway.archive.search import Filters, Found, SearchError
from gateway.archive.storage import ArchiveStorage, ArchiveStorageError, configured_storage
from gateway.audit.search import FilterError, parse_when
from gateway.cli.common import (
    EXIT_USAGE,
    cli_settings,
    config_options,
    fail,
    open_store,
    print_json,
    when,
)
from gateway.cli.identity import EXIT_REFUSED, person_options, signed_in
from gateway.config import Settings
from gateway.store.database import Database
from gateway.store.keyring import Keyring, KeyringError
from gateway.web.users import User

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


@click.group("archive")
def archive_group() -> None:
    """The encrypted archive of accepted mail: find, view and export it (docs/archive.md).

    \b
    Every command here is run by a person who signs in as on the reviewer's
    pages (--user, their password, a TOTP code), with the auditor role; each
    states a reason (--reason), and each access, allowed or refused, is an
    audit event naming who made it. Search and view show metadata only.
    Content leaves only as an export: a ZIP of the exact accepted messages and
    a manifest, encrypted (CMS, AES-256) to the certificate you name.

    \b
      phigate archive search --user alice --recipient pat@example.org \\
          --since 2026-01-01 --reason "subpoena 2026-117"
      phigate archive show Q3F8K2 --user alice --reason "subpoena 2026-117"
      phigate archive export Q3F8K2 --user alice --to q3f8k2.p7m \\
          --recipient-cert counsel.pem --reason "subpoena 2026-117"
    With archive.export.two_person_rule, an export needs a request that
    someone else (admin or auditor) approves:
      phigate archive request Q3F8K2 Q9ZZ01 --user alice --reason "subpoena 2026-117"
      phigate archive approve 12 --user bob
      phigate archive export --request 12 --user alice --to out.p7m --recipient-cert counsel.pem
    Open an export with the certificate's private key:
      openssl cms -decrypt -inform DER -in out.p7m -recip counsel.pem -inkey counsel.key > out.zip
    """


def _reason_option(required: bool = True) -> Callable[[F], F]:
    return click.option(
        "--reason",
        required=required,
        metavar="TEXT",
        help="Why you need it (a case or ticket reference; not a patient's details): kept "
        "with your access.",
    )


def _when_option(*decls: str, end: bool) -> Callable[[F], F]:
    def parsed(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
        try:
            return None if value is None else parse_when(value, end=end)
        except FilterError as exc:
            raise click.BadParameter(str(exc)) from None

    what = "before" if end else "at or after"
    return click.option(
        *decls,
        callback=parsed,
        metavar="WHEN",
        help=f"Only messages received {what} WHEN: a date (YYYY-MM-DD"
        + (", the whole day included" if end else "")
        + ") or an ISO time; UTC unless it names an offset.",
    )


def _stated(reason: str | None) -> str:
    if reason is None or not reason.strip():
        fail("state why with --reason TEXT (a case or ticket reference)", EXIT_USAGE)
    return reason.strip()


def _actor(user: User) -> str:
    """The person as an access event's actor (the pages' sign-in events say web:NAME)."""
    return f"cli:{user.name}"


def _refuse(db: Database, event: str, user: User, refused: AccessRefused, detail: str) -> NoReturn:
    with db.transaction() as conn:
        access.audited(conn, event, access.REFUSED, _actor(user), f"why={refused.why} {detail}")
    fail(str(refused), EXIT_REFUSED)


def _person(
    db: Database,
    settings: Settings,
    event: str,
    name: str,
    password_file: str | None,
    code: str | None,
) -> User:
    """The signed-in person, if their role may make this access (refused and audited if not)."""
    user = signed_in(db, settings, name, password_file, code)
    if not access.may(user.role, event):
        _refuse(
            db,
            event,
            user,
            AccessRefused(
                "role",
                f"{event.replace('_', ' ')} is for the {access.roles_for(event)} "
                f"role; {user.name} is {user.role}",
            ),
            f"role={user.role}",
        )
    return user


def _guarded(db: Database, event: str, user: User, detail: str, step: Callable[[], T]) -> T:
    """Run one step of an access; a refusal is audited (with `detail`) and ends the command."""
    try:
        return step()
    except AccessRefused as refused:
        _refuse(db, event, user, refused, detail)


def _line(found: Found) -> str:
    recipients = found.recipients[0] if found.recipients else "-"
    if len(found.recipients) > 1:
        recipients += f" (+{len(found.recipients) - 1})"
    return (
        f"{found.queue_id:<14} {when(found.received_at):<19}  {found.sender or '<>':<32} "
        f"{recipients:<36} {found.category:<12} {'yes' if found.phi else 'no':<3} "
        f"{found.size:>9}  {'destroyed' if found.destroyed else 'kept'}"
    )


def _as_json(found: Found) -> dict[str, object]:
    return {
        "queue_id": found.queue_id,
        "kind": found.kind,
        "received_at": found.received_at,
        "message_id": found.message_id,
        "principal": found.principal,
        "sender": found.sender,
        "recipients": list(found.recipients),
        "category": found.category,
        "phi": found.phi,
        "size": found.size,
        "sha256": found.sha256,
        "storage": found.storage,
        "destroyed_at": found.destroyed_at,
    }


@archive_group.command("search")
@click.option("--sender", help="The envelope sender (as received).")
@click.option("--recipient", help="An envelope recipient.")
@click.option("--domain", help="The sender's or a recipient's domain.")
@click.option("--principal", help="The principal (client account) that sent it.")
@click.option("--message-id", help="The Message-ID header, as written (with <>).")
@click.option("--category", help="The policy category (treatment, marketing, ...).")
@click.option("--phi/--no-phi", default=None, help="Only messages with (or without) PHI found.")
@_when_option("--since", end=False)
@_when_option("--until", end=True)
@click.option("--limit", type=int, default=100, show_default=True, help="Newest this many.")
@click.option("--json", "as_json", is_flag=True, help="Print the messages as JSON.")
@_reason_option()
@person_options
@config_options
def archive_search(
    sender: str | None,
    recipient: str | None,
    domain: str | None,
    principal: str | None,
    message_id: str | None,
    category: str | None,
    phi: bool | None,
    since: float | None,
    until: float | None,
    limit: int,
    as_json: bool,
    reason: str,
    user_name: str,
    password_file: str | None,
    code: str | None,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Find archived messages by metadata (never content), newest first.

    Give at least one of --sender, --recipient, --domain, --principal,
    --message-id, --since or --until; --category and --phi narrow further.
    The audit event records which filters you used, how many were found and
    your reason, not the addresses you searched for.

    \b
      phigate archive search --user alice --reason "ticket 4711" \\
          --domain clinic.example --since 2026-11-01 --until 2026-11-30
      phigate archive search --user alice --reason "ticket 4711" --sender bills@ours.example --json
    """
    filters = Filters(
        sender=sender,
        recipient=recipient,
        domain=domain,
        principal=principal,
        message_id=message_id,
        category=category,
        phi=phi,
        since=since,
        until=until,
    )
    try:
        query = search.statement(filters, limit)  # checked before anyone signs in
    except SearchError as exc:
        fail(str(exc), EXIT_USAGE)
    note = access.reason_note(_stated(reason))
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        user = _person(db, settings, access.SEARCH, user_name, password_file, code)
        with db.transaction() as conn:
            found = search.search(conn, query)
            detail = f"filters={','.join(filters.named())} count={len(found)} reason={note}"
            access.audited(conn, access.SEARCH, access.OK, _actor(user), detail)
    if as_json:
        print_json([_as_json(f) for f in found])
        return
    if not found:
        click.echo("No archived messages match.")
        return
    click.echo(
        f"{'QUEUE ID':<14} {'RECEIVED (UTC)':<19}  {'SENDER':<32} {'RECIPIENTS':<36} "
        f"{'CATEGORY':<12} PHI {'SIZE':>9}  STATE"
    )
    for f in found:
        click.echo(_line(f))
    if len(found) == limit:
        click.echo(f"(the newest {limit}; narrow the filters or raise --limit for more)")


@archive_group.command("show")
@click.argument("queue_id")
@click.option("--json", "as_json", is_flag=True, help="Print the message's metadata as JSON.")
@_reason_option()
@person_options
@config_options
def archive_show(
    queue_id: str,
    as_json: bool,
    reason: str,
    user_name: str,
    password_file: str | None,
    code: str | None,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Show an archived message's metadata and the legal holds that cover it (no content).

    \b
      phigate archive show Q3F8K2 --user alice --reason "ticket 4711"
    """
    note = access.reason_note(_stated(reason))
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        user = _person(db, settings, access.VIEW, user_name, password_file, code)
        with db.transaction() as conn:
            found = search.described(conn, [queue_id])
            if not found:
                access.audited(
                    conn,
                    access.VIEW,
                    access.REFUSED,
                    _actor(user),
                    f"why=unknown-queue-id reason={note}",
                    [queue_id],
                )
            else:
                covering = holds.covering(conn, queue_id)
                access.audited(
                    conn, access.VIEW, access.OK, _actor(user), f"reason={note}", [queue_id]
                )
    if not found:
        fail(
            f"{queue_id} is not in the archive (find queue ids with `phigate archive search`)",
            EXIT_REFUSED,
        )
    message = found[0]
    if as_json:
        print_json(
            {
                **_as_json(message),
                "holds": [
                    {
                        "id": h.id,
                        "case_ref": h.case_ref,
                        "created_at": h.created_at,
                        "created_by": h.created_by,
                    }
                    for h in covering
                ],
            }
        )
        return
    for label, value in (
        ("Queue id", message.queue_id),
        ("Kind", message.kind),
        ("Received", f"{when(message.received_at)} UTC"),
        ("Message-ID", message.message_id or "-"),
        ("Principal", message.principal or "-"),
        ("Sender", message.sender or "<>"),
        ("Recipients", ", ".join(message.recipients) or "-"),
        ("Category", message.category),
        ("PHI", "yes" if message.phi else "no"),
        ("Size", f"{message.size} bytes"),
        ("SHA-256", message.sha256),
        ("Stored in", message.storage),
        ("State", f"destroyed {when(message.destroyed_at)} UTC" if message.destroyed else "kept"),
    ):
        click.echo(f"{label + ':':<12} {value}")
    if covering:
        for h in covering:
            click.echo(
                f"{'Held:':<12} hold #{h.id} ({h.case_ref}), since {when(h.created_at)} "
                f"by {h.created_by}"
            )
    else:
        click.echo(f"{'Held:':<12} no legal hold covers it")


def _lifetime(settings: Settings) -> float:
    return settings.archive.export.request_hours * 3600.0


@archive_group.command("request")
@click.argument("queue_ids", nargs=-1, required=True, metavar="QUEUE_ID...")
@_reason_option()
@person_options
@config_options
def archive_request(
    queue_ids: tuple[str, ...],
    reason: str,
    user_name: str,
    password_file: str | None,
    code: str | None,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Ask to export these messages; under the two-person rule another admin or auditor
    approves it (`phigate archive approve ID`) before `export --request ID`.

    \b
      phigate archive request Q3F8K2 Q9ZZ01 --user alice --reason "subpoena 2026-117"
    """
    stated = _stated(reason)
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        user = _person(db, settings, access.REQUEST, user_name, password_file, code)
        detail = f"count={len(set(queue_ids))}"

        def made() -> int:
            with db.transaction() as conn:
                messages = export.exportable(conn, queue_ids)
                ids = [m.queue_id for m in messages]
                made = requests.create(conn, ids, stated, user.name, time.time())
                access.audited(
                    conn, access.REQUEST, access.OK, _actor(user), f"request={made} {detail}", ids
                )
            return made

        request_id = _guarded(db, access.REQUEST, user, detail, made)
    click.echo(f"Request #{request_id} made for {len(set(queue_ids))} message(s).")
    if settings.archive.export.two_person_rule:
        click.echo(
            f"Another admin or auditor approves it with `phigate archive approve {request_id}`."
        )
    click.echo(
        f"It expires in {settings.archive.export.request_hours} hours "
        "(archive.export.request_hours)."
    )


@archive_group.command("approve")
@click.argument("request_id", type=int)
@person_options
@config_options
def archive_approve(
    request_id: int,
    user_name: str,
    password_file: str | None,
    code: str | None,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Approve export request REQUEST_ID made by someone else (two-person rule).

    \b
      phigate archive requests --user bob          # what is waiting, and why
      phigate archive approve 12 --user bob
    """
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        user = _person(db, settings, access.APPROVE, user_name, password_file, code)

        def approved() -> Request:
            with db.transaction() as conn:
                done = requests.approve(
                    conn, request_id, user.name, time.time(), _lifetime(settings)
                )
                access.audited(
                    conn,
                    access.APPROVE,
                    access.OK,
                    _actor(user),
                    f"request={request_id} requested_by={done.requested_by} "
                    f"count={len(done.queue_ids)}",
                    done.queue_ids,
                )
            return done

        done = _guarded(db, access.APPROVE, user, f"request={request_id}", approved)
    click.echo(
        f"Request #{request_id} by {done.requested_by} ({len(done.queue_ids)} message(s)) is "
        f"approved: it can be exported once with `phigate archive export --request {request_id}`."
    )


def _request_json(r: Request, now: float, lifetime: float) -> dict[str, object]:
    return {
        "id": r.id,
        "state": r.state(now, lifetime),
        "queue_ids": list(r.queue_ids),
        "reason": r.reason,
        "requested_by": r.requested_by,
        "requested_at": r.requested_at,
        "approved_by": r.approved_by,
        "approved_at": r.approved_at,
        "used_at": r.used_at,
    }


@archive_group.command("requests")
@click.option("--json", "as_json", is_flag=True, help="Print the requests as JSON.")
@person_options
@config_options
def archive_requests(
    as_json: bool,
    user_name: str,
    password_file: str | None,
    code: str | None,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """List export requests, newest first, with their reasons and states
    (waiting, approved, used, expired). For admins and auditors."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        user = _person(db, settings, access.LIST, user_name, password_file, code)
        with db.transaction() as conn:
            found = requests.list_all(conn)
            access.audited(conn, access.LIST, access.OK, _actor(user), f"count={len(found)}")
    now, lifetime = time.time(), _lifetime(settings)
    if as_json:
        print_json([_request_json(r, now, lifetime) for r in found])
        return
    if not found:
        click.echo("No export requests.")
        return
    click.echo(
        f"{'ID':>5}  {'STATE':<9} {'REQUESTED (UTC)':<19}  {'BY':<16} {'APPROVED BY':<16} "
        "MESSAGES  REASON"
    )
    for r in found:
        click.echo(
            f"{r.id:>5}  {r.state(now, lifetime):<9} {when(r.requested_at):<19}  "
            f"{r.requested_by:<16} {r.approved_by or '-':<16} {len(r.queue_ids):>8}  {r.reason}"
        )


def _partial(path: Path, data: bytes) -> Path:
    """`data` in a new file beside `path`, durably, readable by the owner only."""
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("xb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return partial


def _open_keyring(settings: Settings) -> Keyring:
    try:
        return Keyring(settings.path(settings.archive.keys_dir))
    except KeyringError as exc:
        fail(str(exc))


def _open_storage(settings: Settings) -> ArchiveStorage:
    try:
        return configured_storage(settings)
    except ArchiveStorageError as exc:
        fail(str(exc))


def _the_request(
    db: Database,
    settings: Settings,
    user: User,
    queue_ids: Sequence[str],
    request_id: int | None,
    reason: str | None,
) -> Request:
    """The request this export uses: the one named, or (two-person rule off) a new one
    for these messages, so that every export's reason is kept the same way."""
    two_person = settings.archive.export.two_person_rule
    if request_id is not None:
        with db.reading() as conn:
            return requests.usable(
                conn, request_id, time.time(), _lifetime(settings), needs_approval=two_person
            )
    if two_person:
        raise AccessRefused(
            "two-person-rule",
            "the two-person rule is on (archive.export.two_person_rule): make a request with "
            "`phigate archive request QUEUE_ID... --reason TEXT`, have another admin or auditor "
            "approve it, then export it with --request ID",
        )
    assert reason is not None  # checked before signing in
    with db.transaction() as conn:
        ids = [m.queue_id for m in export.exportable(conn, queue_ids)]
        made = requests.create(conn, ids, reason, user.name, time.time())
        found = requests.get(conn, made)
    assert found is not None
    return found


@archive_group.command("export")
@click.argument("queue_ids", nargs=-1, metavar="[QUEUE_ID...]")
@click.option(
    "--request", "request_id", type=int, help="Export this (approved) request's messages."
)
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The bundle to write (a new file: an existing one is never replaced).",
)
@click.option(
    "--recipient-cert",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM certificate (RSA) of whoever will open the bundle: only its private key can.",
)
@_reason_option(required=False)
@person_options
@config_options
def archive_export(
    queue_ids: tuple[str, ...],
    request_id: int | None,
    to: Path,
    recipient_cert: Path,
    reason: str | None,
    user_name: str,
    password_file: str | None,
    code: str | None,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Export messages as an encrypted bundle: a ZIP of `<queue id>.eml` (the exact
    accepted bytes, checked against the SHA-256 recorded at intake) and
    `manifest.json`, in CMS EnvelopedData (AES-256) to --recipient-cert, DER.

    \b
    Without the two-person rule: name the queue ids and --reason.
      phigate archive export Q3F8K2 Q9ZZ01 --user alice --reason "subpoena 2026-117" \\
          --to export.p7m --recipient-cert counsel.pem
    With it: an approved request, used once.
      phigate archive export --request 12 --user alice --to export.p7m --recipient-cert counsel.pem
    Open it:
      openssl cms -decrypt -inform DER -in export.p7m -recip counsel.pem -inkey counsel.key \\
          -out export.zip && unzip export.zip
    """
    if request_id is not None and (queue_ids or reason):
        fail(
            "--request takes its messages and reason from the request: name no queue ids "
            "and no --reason with it",
            EXIT_USAGE,
        )
    if request_id is None and not queue_ids:
        fail("name the queue ids to export, or --request ID", EXIT_USAGE)
    if to.exists():
        fail(f"{to} exists already: name a new file with --to", EXIT_USAGE)
    try:
        cert = bundle.recipient_certificate(recipient_cert.read_bytes(), time.time())
    except CertificateError as exc:
        fail(f"the certificate {recipient_cert} {exc}", EXIT_USAGE)
    settings = cli_settings(config_file, data_dir)
    two_person = settings.archive.export.two_person_rule
    stated = _stated(reason) if request_id is None and not two_person else None
    keyring = _open_keyring(settings)
    storage = _open_storage(settings)
    with open_store(settings) as db:
        user = _person(db, settings, access.EXPORT, user_name, password_file, code)
        cert_ref = f"cert=sha256:{bundle.fingerprint(cert)[:16]}"
        request = _guarded(
            db,
            access.EXPORT,
            user,
            cert_ref,
            lambda: _the_request(db, settings, user, queue_ids, request_id, stated),
        )
        detail = f"request={request.id} count={len(request.queue_ids)} {cert_ref}"
        now = time.time()

        def sealed_bundle() -> bytes:
            with db.reading() as conn:
                messages = export.exportable(conn, request.queue_ids)
                contents = [export.content(conn, keyring, storage, m) for m in messages]
            provenance = Provenance(now, user.name, request.reason, request.id, request.approved_by)
            return bundle.enveloped(bundle.zipped(messages, contents, provenance), cert)

        enveloped = _guarded(db, access.EXPORT, user, detail, sealed_bundle)

        try:
            partial = _partial(to, enveloped)
        except OSError as exc:
            fail(f"cannot write beside {to}: {exc.strerror}")
        try:
            # The request is spent and the export audited before the bundle gets its
            # name: an export that is not audited never appears.
            def used() -> None:
                with db.transaction() as conn:
                    requests.use(
                        conn,
                        request.id,
                        now,
                        _lifetime(settings),
                        needs_approval=two_person,
                    )
                    access.audited(
                        conn, access.EXPORT, access.OK, _actor(user), detail, request.queue_ids, now
                    )

            _guarded(db, access.EXPORT, user, detail, used)
            try:
                os.link(partial, to)  # never over a file that appeared meanwhile
            except OSError as exc:
                fail(
                    f"cannot write {to}: {exc.strerror} (the export is audited; make a new request)"
                )
        finally:
            partial.unlink()
    click.echo(
        f"Exported {len(request.queue_ids)} message(s) (request #{request.id}) to {to}, "
        f"encrypted to {cert.subject.rfc4514_string()}."
    )
