"""`phigate keys`: rotate, re-wrap, list and retire the master keys."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from gateway.cli.common import (
    F,
    audit_admin,
    cli_settings,
    config_options,
    fail,
    open_keyring,
    open_store,
    print_json,
)
from gateway.store.keyring import KeyringError


@click.group()
def keys() -> None:
    """Master keys that wrap the per-message data keys (files in DATA_DIR/keys).

    \b
    Rotation while phigate serves:
      phigate keys rotate           # new key; the server follows; every data key re-wrapped
      phigate keys ls               # which keys stored rows and server processes use
      phigate keys retire mk-1a2b   # delete an old key once nothing uses it
    """


def _rotation_options(func: F) -> F:
    func = click.option("--json", "as_json", is_flag=True)(func)
    func = click.option(
        "--timeout",
        default=30.0,
        show_default=True,
        help="Seconds to wait for every server process to seal with the current key.",
    )(func)
    return config_options(func)


def _rotation(
    config_file: str | None, data_dir: str | None, timeout: float, as_json: bool, *, new_key: bool
) -> None:
    from gateway.store import rotation

    settings = cli_settings(config_file, data_dir)
    keyring = open_keyring(settings)
    with open_store(settings) as db:
        try:
            run = rotation.rotate if new_key else rotation.finish
            done = run(db, keyring, Path(settings.data_dir), timeout)
        except (rotation.RotationError, KeyringError) as exc:
            fail(str(exc))
    audit_admin(
        settings,
        "master_key",
        "rotated" if new_key else "rewrapped",
        f"key={done.key_id} rewrapped={done.rewrapped}",
    )
    old_keys = [key_id for key_id in keyring.key_ids if key_id != done.key_id]
    if as_json:
        print_json({**asdict(done), "retirable": old_keys})
        return
    click.echo(f"Master key {done.key_id} is current; {done.rewrapped} data keys re-wrapped.")
    if done.server_pid is None:
        click.echo("No running server found; it seals with the current key when it starts.")
    else:
        pids = ", ".join(map(str, done.processes))
        click.echo(f"Server processes sealing with {done.key_id}: {pids or 'none'}.")
    if old_keys:
        click.echo(
            f"No stored data key needs {', '.join(old_keys)} any more: once your backups "
            "do not need them either, remove each with `phigate keys retire KEY_ID`."
        )


@keys.command("rotate")
@_rotation_options
def keys_rotate(
    config_file: str | None, data_dir: str | None, timeout: float, as_json: bool
) -> None:
    """Create a new master key and re-wrap every stored data key under it.

    Safe while phigate serves: the server is told (SIGHUP, which also
    reloads its policy from disk) and seals new mail with the new key; data
    keys are re-wrapped in small transactions until no stored message uses
    an older key, including mail sealed while the server was switching over.
    Old key files stay: remove them with `phigate keys retire` (it refuses a
    key anything still uses). Exit status 1 if a server process did not
    switch within --timeout.
    """
    _rotation(config_file, data_dir, timeout, as_json, new_key=True)


@keys.command("rewrap")
@_rotation_options
def keys_rewrap(
    config_file: str | None, data_dir: str | None, timeout: float, as_json: bool
) -> None:
    """Finish a rotation: re-wrap data keys still under an older master key.

    Like `rotate` without creating a key: for a rotation that was
    interrupted, or whose server processes switched late.
    """
    _rotation(config_file, data_dir, timeout, as_json, new_key=False)


@keys.command("ls")
@click.option("--json", "as_json", is_flag=True)
@config_options
def keys_ls(as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """List master keys: which is current, how many stored data keys each wraps,
    and which running server processes seal new mail with it (never key material).
    """
    from gateway.store import rotation

    settings = cli_settings(config_file, data_dir)
    keyring = open_keyring(settings)
    with open_store(settings) as db:
        uses = rotation.key_uses(db, keyring, Path(settings.data_dir))
    if as_json:
        print_json([asdict(use) for use in uses])
        return
    click.echo(f"{'KEY':<12} {'CURRENT':<8} {'ROWS':>8}  PROCESSES")
    for use in uses:
        pids = ", ".join(map(str, use.processes)) or "-"
        missing = "" if use.file else "  (key file missing: restore it from a backup)"
        click.echo(
            f"{use.key_id:<12} {'yes' if use.current else '':<8} {use.rows:>8}  {pids}{missing}"
        )


@keys.command("retire")
@click.argument("key_id")
@config_options
def keys_retire(key_id: str, config_file: str | None, data_dir: str | None) -> None:
    """Delete master key KEY_ID once nothing uses it.

    Refused (exit status 1) while it is the current key, while any stored
    message or sandbox capture is wrapped under it, or while a running
    server process still seals with it. A retired key is gone: backups of
    the database made while it was in use need a backup of the key too.
    """
    from gateway.store import rotation

    settings = cli_settings(config_file, data_dir)
    keyring = open_keyring(settings)
    with open_store(settings) as db:
        try:
            rotation.retire(db, keyring, Path(settings.data_dir), key_id)
        except (rotation.RotationError, KeyringError) as exc:
            fail(f"not retiring {key_id}: {exc}")
    audit_admin(settings, "master_key", "retired", f"key={key_id}")
    click.echo(f"Retired master key {key_id}; its file is deleted.")
