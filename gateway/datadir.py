"""The data directory: its master key, a development certificate, the migrated store with
its audit key, and the development principal of embedded defaults.

`phigate serve`, `phigate init`, every CLI command that opens the store, and the tests
prepare and open it the same way through here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from gateway.audit import checkpoints
from gateway.config import Settings
from gateway.mail import tls
from gateway.smime.certs.store import CertStore
from gateway.store import principals
from gateway.store.audit_key import KEY_FILE as AUDIT_KEY_FILE
from gateway.store.audit_key import create_audit_key, load_audit_key
from gateway.store.database import Database, SchemaError
from gateway.store.keyring import Keyring, KeyringError
from gateway.store.schema import principals as principals_table

DEV_DOMAINS = ["example.org", "example.com"]
DEV_CREDENTIALS = "dev-principal.json"


@dataclass(frozen=True)
class DevCredentials:
    name: str
    secret: str
    domains: list[str]


def prepare_data_dir(settings: Settings, *, generate_cert: bool) -> None:
    """Create the data dir, master keys (the archive's too, when it is enabled) and
    (if asked) a self-signed certificate."""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    Keyring.create(settings.path(settings.keys_dir))
    if settings.archive.enabled:
        Keyring.create(settings.path(settings.archive.keys_dir))
    cert, key = settings.path(settings.tls.cert_file), settings.path(settings.tls.key_file)
    if generate_cert and not cert.exists() and not key.exists():
        tls.generate_self_signed(cert, key, settings.hostname)


METRICS_DIR = "metrics"


def prepare_metrics_dir(settings: Settings) -> Path:
    """The metrics files' directory, emptied: counting starts again with each start.

    Only `serve` calls it, before forking, while no process of this data dir counts.
    """
    directory = settings.path(METRICS_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory


def open_database(settings: Settings) -> Database:
    """The migrated store, with the audit key that appending audit events needs.

    The audit key is made here when there is none and the trail was never
    keyed (a new installation, or the first start after the upgrade that
    brought it); a trail keyed before needs its own key back.
    """
    db = Database(settings.db_url)
    try:
        _ready_schema(db)
        keys_dir = settings.path(settings.keys_dir)
        if not (keys_dir / AUDIT_KEY_FILE).exists():
            with db.reading() as conn:
                signed = checkpoints.newest(conn)
            if signed is not None:
                raise KeyringError(
                    f"no audit key at {keys_dir / AUDIT_KEY_FILE}, but the audit trail was "
                    f"keyed with key {signed.key_id}: restore it from a backup of the keys "
                    "directory"
                )
            create_audit_key(keys_dir)
        db.audit_key = load_audit_key(keys_dir)
    except BaseException:
        db.close()
        raise
    return db


def _ready_schema(db: Database) -> None:
    """Migrate only where no other node can be running on the schema: the embedded
    SQLite store (one machine's), or a shared database with no schema yet. A shared
    schema at an older revision is upgraded by `phigate db upgrade`, run once
    before a new version rolls out, never under the nodes still serving on it."""
    state = db.schema_state()
    if state.ahead:
        raise state.ahead_error()
    if not state.behind:
        return
    if db.dialect == "sqlite" or state.current is None:
        db.migrate()
        return
    raise SchemaError(
        f"the database's schema is at revision {state.current} and this version of "
        f"phigate needs revision {state.head}: upgrade it once, from one node, with "
        "`phigate db upgrade -c FILE` (FILE: this node's phigate.yaml), then start the "
        "nodes of this version"
    )


def ensure_dev_principal(settings: Settings, db: Database) -> DevCredentials | None:
    """On embedded defaults, create one principal the first time; returns it if new."""
    with db.transaction() as conn:
        if conn.execute(select(func.count()).select_from(principals_table)).scalar_one():
            return None
        secret = principals.add(conn, "dev", DEV_DOMAINS)
    creds = DevCredentials("dev", secret, DEV_DOMAINS)
    path = settings.path(DEV_CREDENTIALS)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(creds.__dict__, out, indent=2)
    return creds


def cert_store(settings: Settings) -> CertStore:
    """Recipients' S/MIME certificates, where the settings keep them."""
    smime = settings.smime
    trust = settings.path(smime.trust_file) if smime.trust_file else None
    return CertStore(settings.path(smime.certs_dir), trust)
