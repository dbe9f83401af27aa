"""`phigate dkim`: make, publish, rotate and remove DKIM signing keys.

Changes take effect on a running server with the next message it signs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from gateway.cli.common import EXIT_USAGE, cli_settings, config_options, fail, print_json, when
from gateway.dkim.keys import (
    ALGORITHMS,
    MAX_RSA_BITS,
    MIN_RSA_BITS,
    DkimError,
    DnsRecord,
    KeyInfo,
    KeyRequestError,
    KeyStore,
)


@contextmanager
def _reported() -> Iterator[None]:
    """DKIM errors as one line for a person: exit 2 for a bad request, 1 otherwise."""
    try:
        yield
    except KeyRequestError as exc:
        fail(str(exc), EXIT_USAGE)
    except DkimError as exc:
        fail(str(exc))


def _store(config_file: str | None, data_dir: str | None) -> tuple[KeyStore, frozenset[str]]:
    """The key store of these settings, and the domains that must be signed."""
    settings = cli_settings(config_file, data_dir)
    root = settings.path(settings.dkim.keys_dir)
    if not root.parent.is_dir():
        fail(
            f"no data directory at {root.parent}: run `phigate init DIR` or "
            "`phigate serve` once, or pass --data-dir / -c",
            EXIT_USAGE,
        )
    return KeyStore(root), frozenset(settings.dkim.required_domains)


def _active_selector(store: KeyStore, domain: str, algorithm: str) -> str | None:
    return next(
        (k.selector for k in store.listing(domain) if k.algorithm == algorithm and k.active), None
    )


def _dig(info: KeyInfo) -> str:
    return f"dig +short TXT {info.selector}._domainkey.{info.domain}"


@click.group("dkim")
def dkim_group() -> None:
    """DKIM signing keys: mail is signed for the domain of its From header.

    Each key has a selector, the name under which its public half is published
    in DNS (SELECTOR._domainkey.DOMAIN). Per domain, one RSA and one Ed25519
    key can be active; mail is signed with each active key.

    \b
    First key of a domain (it signs at once: publish its record right away):
      phigate dkim keygen example.org --selector 2026a
    Ed25519 beside RSA (receivers that know Ed25519 check both):
      phigate dkim keygen example.org --selector 2026e --algorithm ed25519
    Rotation: a new selector, publish it, activate it, remove the old one later:
      phigate dkim keygen example.org --selector 2027a
      phigate dkim activate example.org 2027a   # once DNS shows the record
      phigate dkim rm example.org 2026a         # a week later

    Run these as the user the server runs as: keys are readable by their owner
    only. A running server signs with the changed keys from the next message.
    """


@dkim_group.command("keygen")
@click.argument("domain")
@click.option(
    "-s",
    "--selector",
    required=True,
    help="The key's name in DNS, new for every key: for example 2026a (year and letter).",
)
@click.option(
    "-a",
    "--algorithm",
    type=click.Choice(sorted(ALGORITHMS)),
    default="rsa",
    show_default=True,
    help="rsa is what every receiver checks; add an ed25519 key beside it if you like.",
)
@click.option(
    "--bits",
    type=int,
    help=f"RSA key size, {MIN_RSA_BITS} (the default) to {MAX_RSA_BITS}.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the key and its record as JSON.")
@config_options
def keygen(
    domain: str,
    selector: str,
    algorithm: str,
    bits: int | None,
    as_json: bool,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Generate a key for DOMAIN and print the DNS TXT record to publish.

    The first key of an algorithm for a domain becomes active at once; later
    ones wait for `phigate dkim activate`, so that you can publish their
    record first. An existing selector is never overwritten.
    """
    if bits is not None and algorithm != "rsa":
        fail("--bits is for RSA keys only: Ed25519 keys have one size", EXIT_USAGE)
    store, _ = _store(config_file, data_dir)
    with _reported():
        info = store.generate(domain, selector, ALGORITHMS[algorithm], bits or MIN_RSA_BITS)
        record = store.dns_record(info.domain, info.selector)
        active = _active_selector(store, info.domain, info.algorithm)
    if as_json:
        print_json({**info.as_json(), "dns": _record_json(record)})
        return
    click.echo(
        f"Created {info.algorithm} key {info.selector} for {info.domain} ({info.bits} bits): "
        f"{info.path}"
    )
    click.echo(f"\nPublish this TXT record in the {info.domain} zone:\n")
    click.echo(record.zone_line)
    click.echo(
        f"\n(In a DNS web console: name {info.selector}._domainkey, type TXT, value "
        f"{record.value})\n"
    )
    if info.active:
        click.echo(
            f"Active: mail From {info.domain} is signed with it from now on. Receivers can "
            f"check the signatures once `{_dig(info)}` shows the record."
        )
    else:
        click.echo(
            f"Not active yet: {info.domain} signs {info.algorithm} with {active}. Once "
            f"`{_dig(info)}` shows the record, run `phigate dkim activate {info.domain} "
            f"{info.selector}`; remove {active} a week later with "
            f"`phigate dkim rm {info.domain} {active}`."
        )


def _record_json(record: DnsRecord) -> dict[str, object]:
    return {
        "name": record.name,
        "type": "TXT",
        "value": record.value,
        "strings": record.strings,
        "zone": record.zone_line,
    }


@dkim_group.command("ls")
@click.argument("domain", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON.")
@config_options
def ls(domain: str | None, as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """List the keys (of DOMAIN, or all), which ones are active, and their DNS names."""
    store, _ = _store(config_file, data_dir)
    with _reported():
        keys = store.listing(domain)
    if as_json:
        print_json([k.as_json() for k in keys])
        return
    if not keys:
        click.echo("No DKIM keys (create one with `phigate dkim keygen DOMAIN --selector S`).")
        return
    width = max(len(k.domain) for k in keys)
    for k in keys:
        state = "active" if k.active else "-"
        click.echo(
            f"{k.domain:<{width}}  {k.selector:<16} {k.algorithm:<15} {k.bits:>5}  "
            f"{state:<6}  created {when(k.created_at)}"
        )


@dkim_group.command("dns")
@click.argument("domain")
@click.argument("selector")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@config_options
def dns(
    domain: str, selector: str, as_json: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Print the DNS TXT record of a key again (zone-file syntax)."""
    store, _ = _store(config_file, data_dir)
    with _reported():
        record = store.dns_record(domain, selector)
    if as_json:
        print_json(_record_json(record))
    else:
        click.echo(record.zone_line)


@dkim_group.command("activate")
@click.argument("domain")
@click.argument("selector")
@config_options
def activate(domain: str, selector: str, config_file: str | None, data_dir: str | None) -> None:
    """Sign DOMAIN's mail with the key SELECTOR (instead of its other key of that algorithm).

    Publish the key's record first (`phigate dkim dns DOMAIN SELECTOR`) and
    check that DNS shows it: receivers cannot check a signature before.
    """
    store, _ = _store(config_file, data_dir)
    with _reported():
        target = store.key(domain, selector)
        previous = _active_selector(store, target.domain, target.algorithm)
        info = store.activate(domain, selector)
    if previous == info.selector:
        click.echo(f"{info.domain} already signs {info.algorithm} with {info.selector}.")
        return
    click.echo(f"{info.domain} now signs {info.algorithm} with {info.selector}.")
    if previous is not None:
        click.echo(
            f"Keep {previous}'s DNS record for a week (mail signed with it may still be on "
            f"its way), then `phigate dkim rm {info.domain} {previous}`."
        )


@dkim_group.command("rm")
@click.argument("domain")
@click.argument("selector")
@click.option(
    "--force",
    is_flag=True,
    help="Remove it even though it is the active key: the domain stops signing with it.",
)
@config_options
def rm(
    domain: str, selector: str, force: bool, config_file: str | None, data_dir: str | None
) -> None:
    """Delete the key SELECTOR of DOMAIN (the active one only with --force)."""
    store, required = _store(config_file, data_dir)
    with _reported():
        info = store.remove(domain, selector, force)
        left = store.listing(info.domain)
    click.echo(f"Removed {info.algorithm} key {info.selector} of {info.domain} ({info.path}).")
    if info.active:
        click.echo(f"{info.domain} no longer signs with {info.algorithm}.")
        if info.domain in required and not any(k.active for k in left):
            click.echo(
                f"Warning: {info.domain} is in dkim.required_domains and has no active key: "
                "its mail is refused (451) until one is activated.",
                err=True,
            )
    click.echo(f"Its record {info.selector}._domainkey.{info.domain} can go from DNS now.")
