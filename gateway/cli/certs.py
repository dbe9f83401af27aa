"""`phigate certs ...`: the recipient certificates S/MIME encrypts to."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import NoReturn

import click

from gateway.cli.common import EXIT_USAGE, cli_settings, config_options, fail, print_json
from gateway.smime.certs.revocation import CrlInfo
from gateway.smime.certs.store import (
    BadSelector,
    CertEntry,
    CertStore,
    CertStoreError,
    ImportedItem,
)


def _open(config_file: str | None, data_dir: str | None) -> CertStore:
    settings = cli_settings(config_file, data_dir)
    if not Path(settings.data_dir).is_dir():
        fail(
            f"no data directory at {settings.data_dir}: start `phigate serve` once, run "
            "`phigate init DIR`, or pass --data-dir / -c",
            EXIT_USAGE,
        )
    # The data directory's helpers load SQLAlchemy: only for commands that run.
    from gateway.datadir import cert_store

    return cert_store(settings)


def _day(moment: datetime.datetime | None) -> str:
    return f"{moment:%Y-%m-%d}" if moment else "-"


def _who(entry: CertEntry) -> str:
    return ", ".join(entry.facts.addresses) or entry.facts.subject


def _selection_failed(exc: CertStoreError) -> NoReturn:
    code = EXIT_USAGE if isinstance(exc, BadSelector) else 1
    fail(str(exc), code)


def _crl_line(crl: CrlInfo, now: datetime.datetime) -> str:
    stale = f" (stale: next update was due {_day(crl.next_update)})" if crl.stale(now) else ""
    return (
        f"CRL {crl.fingerprint[:16]}  {crl.issuer}: {crl.revoked} revoked, "
        f"issued {_day(crl.last_update)}{stale}  {crl.problem or 'in force'}"
    )


@click.group("certs")
def certs_group() -> None:
    """Recipient certificates for S/MIME encryption (policy delivery mode `smime`).

    \b
    Certificates live in smime.certs_dir (default DATA_DIR/certs): import them
    with `phigate certs import`, or copy PEM or DER files of any name there;
    a running server notices added and removed files without a restart.
    A certificate is used for a recipient only when it is usable: it chains to
    a trusted CA (smime.trust_file, else the system CAs), is within its dates,
    has an RSA key allowed for key encipherment and e-mail protection, names
    the recipient's address, and no imported CRL revokes it.
    """


@certs_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@config_options
def certs_import(
    files: tuple[str, ...], as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Import certificates and CRLs from FILES: PEM (one or many), DER, or PKCS#7
    bundles (.p7b/.p7c, PEM or DER).

    Each certificate is stored once, as certs_dir/<sha256>.pem, intermediates
    included (they complete chains); each CRL as certs_dir/<sha256>.crl. The
    report says, per certificate, its addresses, subject, expiry and whether it
    is usable (or why not). Exits 1 when a file could not be imported.
    """
    store = _open(config_file, data_dir)
    now = datetime.datetime.now(datetime.UTC)
    try:
        report = store.import_files([Path(f) for f in files], now)
    except CertStoreError as exc:
        fail(str(exc))
    if as_json:
        print_json(
            {
                "imported": [_item_json(item, now) for item in report.items],
                "errors": [{"file": e.path, "error": e.error} for e in report.errors],
            }
        )
    else:
        for item in report.items:
            click.echo(_item_line(item, now))
        for error in report.errors:
            click.echo(f"phigate: {error.path}: {error.error}", err=True)
    if report.errors:
        raise SystemExit(1)


def _item_json(item: ImportedItem, now: datetime.datetime) -> dict[str, object]:
    detail: dict[str, object] = {"file": item.source, "kind": item.kind, "new": item.new}
    if item.entry is not None:
        detail.update(item.entry.as_json())
    elif item.crl is not None:
        detail.update(item.crl.as_json(now))
    return detail


def _item_line(item: ImportedItem, now: datetime.datetime) -> str:
    state = "imported" if item.new else "present "
    if item.entry is not None:
        entry = item.entry
        subject = f"  ({entry.facts.subject})" if entry.facts.addresses else ""
        return (
            f"{state}  {entry.fingerprint[:16]}  {_who(entry)}{subject}  "
            f"valid until {_day(entry.facts.cert.not_valid_after_utc)}  {entry.status}"
        )
    if item.crl is not None:
        return f"{state}  {_crl_line(item.crl, now)}"
    return f"{state}  {item.kind} {item.fingerprint[:16]}"


@certs_group.command("ls")
@click.argument("address", required=False)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print {certificates, crls, unreadable, trust} as JSON.",
)
@config_options
def certs_ls(
    address: str | None, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """List stored certificates (or those for ADDRESS) with their status: "usable" or
    the reason they are not. CA certificates are listed after recipients; they are
    only used to build chains. CRLs and files that could not be read follow."""
    store = _open(config_file, data_dir)
    now = datetime.datetime.now(datetime.UTC)
    entries = store.entries(now, address)
    if as_json:
        print_json(
            {
                "certificates": [entry.as_json() for entry in entries],
                "crls": [crl.as_json(now) for crl in store.crls()],
                "unreadable": [{"file": u.path, "error": u.error} for u in store.unreadable()],
                "trust": {
                    "source": str(store.trust_source) if store.trust_source else None,
                    "error": store.trust_error,
                },
            }
        )
        return
    if not entries:
        where = f" for {address}" if address else ""
        click.echo(f"No certificates{where} in {store.certs_dir}.")
    for entry in entries:
        click.echo(
            f"{entry.fingerprint[:16]}  {_day(entry.facts.cert.not_valid_after_utc)}  "
            f"{_who(entry)}  {entry.status}"
        )
    for crl in store.crls():
        click.echo(_crl_line(crl, now))
    for unreadable in store.unreadable():
        click.echo(f"phigate: warning: {unreadable.path}: {unreadable.error}", err=True)
    if store.trust_error:
        click.echo(f"phigate: warning: {store.trust_error}", err=True)


@certs_group.command("show")
@click.argument("selector", metavar="FINGERPRINT|ADDRESS")
@click.option("--json", "as_json", is_flag=True, help="Print a list of certificates as JSON.")
@config_options
def certs_show(selector: str, as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """Details of one certificate (a fingerprint or an unambiguous prefix of it), or of
    every certificate for ADDRESS: dates, key, usages, S/MIME capabilities, chain and
    every reason it is not usable."""
    store = _open(config_file, data_dir)
    try:
        entries = store.lookup(selector)
    except CertStoreError as exc:
        _selection_failed(exc)
    if as_json:
        print_json([entry.as_json() for entry in entries])
        return
    for number, entry in enumerate(entries):
        if number:
            click.echo("")
        click.echo(_details(entry))


def _details(entry: CertEntry) -> str:
    facts, cert = entry.facts, entry.facts.cert

    def listed(values: tuple[str, ...] | None) -> str:
        return "(not restricted)" if values is None else ", ".join(values) or "(none)"

    lines = [
        f"Fingerprint (SHA-256): {facts.fingerprint}",
        f"Kind:        {'CA certificate' if facts.is_ca else 'recipient certificate'}",
        f"Addresses:   {', '.join(facts.addresses) or '(none)'}",
        f"Subject:     {facts.subject}",
        f"Issuer:      {facts.issuer}",
        f"Serial:      {cert.serial_number:x}",
        f"Valid:       {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
        f"Key:         {facts.key}",
        f"Key usage:   {listed(facts.key_usage)}",
        f"Extended key usage: {listed(facts.extended_key_usage)}",
        f"S/MIME capabilities: {', '.join(facts.capabilities) or '(none listed)'}"
        + ("  -> AES-256-GCM when smime.algorithm is auto" if facts.offers_gcm else ""),
        "Chain:       " + (" <- ".join(entry.chain) if entry.chain else "(not built)"),
        f"Files:       {', '.join(entry.files)}",
        f"Status:      {entry.status}",
    ]
    lines.extend(f"             also: {problem}" for problem in entry.problems[1:])
    return "\n".join(lines)


@certs_group.command("rm")
@click.argument("selector", metavar="FINGERPRINT|ADDRESS")
@click.option("--json", "as_json", is_flag=True, help="Print the removed certificates as JSON.")
@config_options
def certs_rm(selector: str, as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """Remove a certificate by fingerprint (an unambiguous prefix is enough), or every
    certificate for an ADDRESS. A certificate inside a bundle file is taken out of
    it: the bundle's other certificates are kept as files of their own."""
    store = _open(config_file, data_dir)
    try:
        removed = store.remove(selector)
    except CertStoreError as exc:
        _selection_failed(exc)
    if as_json:
        print_json([entry.as_json() for entry in removed])
        return
    for entry in removed:
        click.echo(f"Removed {entry.fingerprint[:16]} ({_who(entry)}).")
