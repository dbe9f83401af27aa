"""`phigate retention run / explain / records` against a real store: crypto-shredding what is
due, sparing what a legal hold covers, recording and auditing each batch."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from archive_copies import BUCKET, s3_server
from archived import DAY, YEAR, archive, write_rules
from click.testing import CliRunner
from databases import fresh_database
from residue import residue
from sqlalchemy import select
from stores import CliStore

from gateway import datadir
from gateway.archive import destruction
from gateway.archive.records import MESSAGE, ArchiveEntry, record, sealed_content
from gateway.archive.rules_file import load_schedule
from gateway.archive.storage import S3Storage
from gateway.audit.verify import verify
from gateway.cli import main
from gateway.cli.common import cli_actor
from gateway.config import ArchiveStorageConfig
from gateway.settings_loader import load_settings
from gateway.store.keyring import Keyring
from gateway.store.schema import archived_messages, audit_events, destruction_records

CANARY = b"CANARY-7f3a9c21-retention-plaintext Jane Roe MRN 00481516"
NOW = time.time()


@dataclass
class Store(CliStore):
    tmp: Path

    def add(self, queue_id: str, age: float, **kw: Any) -> bytes:
        with self.db.transaction() as conn:
            return archive(conn, self.keyring, queue_id, NOW - age, **kw)

    def row(self, queue_id: str) -> Any:
        with self.db.reading() as conn:
            query = select(archived_messages).where(archived_messages.c.queue_id == queue_id)
            return conn.execute(query).one()

    def events(self, name: str) -> list[Any]:
        with self.db.reading() as conn:
            query = select(audit_events).where(audit_events.c.event == name)
            return list(conn.execute(query.order_by(audit_events.c.id)))


def _store(tmp_path: Path, url: str) -> Iterator[Store]:
    config = tmp_path / "phigate.yaml"
    rules = write_rules(tmp_path)
    settings_data = {
        "data_dir": str(tmp_path / "data"),
        "database_url": url,
        "archive": {"retention": {"rules_file": str(rules), "batch": 2}},
    }
    config.write_text(yaml.safe_dump(settings_data))
    settings = load_settings(config)
    datadir.prepare_data_dir(settings, generate_cert=False)
    db = datadir.open_database(settings)
    try:
        yield Store(config, db, Keyring.create(tmp_path / "archive-keys"), tmp_path)
    finally:
        db.close()


@pytest.fixture
def store(tmp_path: Path, database_url: str) -> Iterator[Store]:
    yield from _store(tmp_path, database_url)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """SQLite whatever the run's database: these tests read the database file itself."""
    with fresh_database(tmp_path, postgres=False) as url:
        yield from _store(tmp_path, url)


def test_run_destroys_what_is_due_and_leaves_no_ciphertext_in_the_files(
    sqlite_store: Store,
) -> None:
    s = sqlite_store
    sealed = s.add("OLD1", 7 * YEAR, content=CANARY)
    kept = s.add("NEW1", 1 * YEAR, content=CANARY + b" recent")
    s.add("PROMO1", 100 * DAY, category="marketing")
    s.add("LEGAL1", 20 * YEAR, principal="legal")
    db_file = s.tmp / "phigate.db"
    s.db.checkpoint()
    assert residue(db_file, sealed), "the test must be able to find the ciphertext"

    outcome = s.json("retention", "run")
    assert outcome["destroyed"] == 2
    assert outcome["destroyed_by_rule"] == {"default": 1, "marketing": 1}
    assert outcome["held"] == 0 and outcome["skipped"] == []

    for queue_id in ("OLD1", "PROMO1"):
        row = s.row(queue_id)
        assert row.wrapped_key is None and row.content is None
        assert row.destroyed_at is not None and row.destruction_id is not None
        # The metadata stays.
        assert row.sender == "dr@clinic.example"
    with s.db.reading() as conn:
        assert sealed_content(conn, "OLD1") is None
        recent = sealed_content(conn, "NEW1")
    assert recent is not None and s.keyring.open(recent[0], b"NEW1") == CANARY + b" recent"
    assert s.row("LEGAL1").wrapped_key is not None
    # Gone from the database file and its WAL, not just from the rows.
    assert residue(db_file, sealed) == []
    assert residue(db_file, kept) != []
    for path in s.tmp.glob("phigate.db*"):
        assert CANARY not in path.read_bytes()


def test_each_batch_is_recorded_and_audited_without_content(store: Store) -> None:
    for n in range(5):
        store.add(f"OLD{n}", 7 * YEAR + n, content=CANARY)
    outcome = store.json("retention", "run")
    assert outcome["destroyed"] == 5
    # batch: 2 in the settings: three transactions, a record and an event for each.
    with store.db.reading() as conn:
        records = list(conn.execute(select(destruction_records).order_by(destruction_records.c.id)))
    assert [r.count for r in records] == [2, 2, 1]
    assert {r.run_id for r in records} == {outcome["run_id"]}
    assert {r.rule for r in records} == {"default"}
    assert {r.actor for r in records} == {cli_actor()}
    assert all("wrapped_key" in r.method and "content" in r.method for r in records)
    assert sorted(q for r in records for q in json.loads(r.queue_ids)) == [
        f"OLD{n}" for n in range(5)
    ]
    events = store.events(destruction.DESTROYED)
    assert [e.actor for e in events] == [cli_actor()] * 3
    assert events[0].detail == (
        f"run={outcome['run_id']} rule=default record={records[0].id} count=2"
    )
    with store.db.reading() as conn:
        assert verify(conn, store.db.audit_key).ok  # type: ignore[arg-type]

    listed = store.cli("retention", "records", "--json")
    assert listed.exit_code == 0, listed.output
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [line["count"] for line in lines] == [2, 2, 1]
    assert lines[0]["queue_ids"] == ["OLD4", "OLD3"]  # oldest first
    text = store.cli("retention", "records", "--since", "2000-01-01").stdout
    assert text.count("destroyed by cli:") == 3
    assert store.cli("retention", "records", "--since", "2999-01-01").stdout == ""
    for output in (listed.stdout, text, json.dumps(outcome)):
        assert CANARY.decode() not in output and "Jane Roe" not in output


def test_dry_run_changes_nothing(store: Store) -> None:
    store.add("OLD1", 7 * YEAR)
    store.add("OLD2", 8 * YEAR, principal="billing")
    store.json("hold", "add", "--case", "C-1", "--reason", "litigation", "--principal", "billing")
    before = store.row("OLD1")
    outcome = store.json("retention", "run", "--dry-run")
    assert outcome["dry_run"] is True
    assert outcome["destroyed"] == 1 and outcome["held"] == 1
    assert store.row("OLD1") == before
    with store.db.reading() as conn:
        assert conn.execute(select(destruction_records)).first() is None
    assert store.events(destruction.DESTROYED) == []
    text = store.cli("retention", "run", "--dry-run")
    assert "would destroy 1 of 2" in text.stdout


def test_held_content_survives_until_every_hold_is_released(store: Store) -> None:
    store.add("OLD1", 7 * YEAR, principal="billing")
    store.add("OLD2", 7 * YEAR, sender="x@partner.example")
    store.add("OLD3", 7 * YEAR)
    first = store.json(
        "hold", "add", "--case", "2026-CV-0142", "--reason", "litigation", "--principal", "billing"
    )
    second = store.json(
        "hold", "add", "--case", "INV-7", "--reason", "inquiry", "--queue-id", "OLD1",
        "--queue-id", "OLD2",
    )  # fmt: skip
    assert first["covers"] == {"messages": 1, "not_destroyed": 1}

    run = store.json("retention", "run")
    assert run["destroyed"] == 1 and run["held"] == 2
    skipped = {s["hold_id"]: s for s in run["skipped"]}
    assert skipped[first["id"]]["queue_ids"] == ["OLD1"]
    assert sorted(skipped[second["id"]]["queue_ids"]) == ["OLD1", "OLD2"]
    assert skipped[second["id"]]["case_ref"] == "INV-7"
    assert store.row("OLD1").wrapped_key is not None
    assert store.row("OLD2").wrapped_key is not None
    assert store.row("OLD3").wrapped_key is None
    text = store.cli("retention", "run").stdout
    assert f"skipped 2 held by hold #{second['id']} (case INV-7)" in text

    explained = store.json("retention", "explain", "OLD1")
    assert explained["rule"] == "default" and explained["held"] is True
    assert {h["id"] for h in explained["holds"]} == {first["id"], second["id"]}
    assert explained["due_at"] < time.time()

    store.json("hold", "release", str(second["id"]), "--reason", "closed")
    after_one = store.json("retention", "run")
    assert after_one["destroyed"] == 1  # OLD2; OLD1 is still held by the first hold
    assert store.row("OLD1").wrapped_key is not None
    store.json("hold", "release", str(first["id"]), "--reason", "settled")
    assert store.json("retention", "run")["destroyed"] == 1
    assert store.row("OLD1").wrapped_key is None
    explained = store.json("retention", "explain", "OLD1")
    assert explained["held"] is False and explained["destroyed_at"] is not None
    assert [h["standing"] for h in explained["holds"]] == [False, False]


def test_explain_tells_the_rule_and_when(store: Store) -> None:
    store.add("PROMO1", 10 * DAY, category="marketing")
    store.add("LEGAL1", 20 * YEAR, principal="legal")
    promo = store.json("retention", "explain", "PROMO1")
    assert promo["rule"] == "marketing" and promo["keep"] == "90d"
    assert promo["due_at"] == pytest.approx(NOW - 10 * DAY + 90 * DAY)
    assert promo["holds"] == [] and promo["destroyed_at"] is None
    text = store.cli("retention", "explain", "LEGAL1").stdout
    assert "rule: legal-forever (keep forever; principal: legal)" in text
    assert "due: never" in text
    missing = store.cli("retention", "explain", "NOPE")
    assert missing.exit_code == 1 and "no archived message NOPE" in missing.output


def _in_object_store(store: Store, storage: S3Storage, queue_id: str) -> str:
    entry = ArchiveEntry(
        queue_id, MESSAGE, NOW - 7 * YEAR, None, "ehr1", "a@b.example", ("c@d.example",),
        "treatment", True, 13, "0" * 64,
    )  # fmt: skip
    sealed = store.keyring.seal(b"object-stored", queue_id.encode())
    object_key = storage.put(queue_id, sealed.ciphertext)
    with store.db.transaction() as conn:
        record(conn, entry, sealed, storage="s3", object_key=object_key)
    return object_key


def test_object_store_copies_are_deleted_after_the_key(store: Store) -> None:
    """Content kept in an S3-compatible store (a real server on loopback): the run
    removes the row's key first, then the object; without the store configured it
    refuses rather than leave the object behind."""
    deleted: list[str] = []

    class Watched(S3Storage):
        def delete(self, object_key: str) -> None:
            # Deleted once the commit that removed the key is done.
            assert store.row(object_key.removeprefix("archive/")).wrapped_key is None
            super().delete(object_key)
            deleted.append(object_key)

    with s3_server(store.tmp) as s3:
        config = ArchiveStorageConfig.model_validate(s3.settings())
        storage = Watched(config, s3.credentials_file)
        key = _in_object_store(store, storage, "S3OLD")
        schedule = load_schedule(store.tmp / "retention.yaml")
        outcome = destruction.run(
            store.db.transaction, schedule, time.time(), "cli:test", storage=storage
        )
        assert outcome.destroyed_count == 1 and deleted == [key]
        listed = s3.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])
        assert key not in [o["Key"] for o in listed]
        with store.db.reading() as conn:
            method = conn.execute(select(destruction_records.c.method)).scalar_one()
        assert "object-store copies deleted" in method
        # Without the object store (archive.storage database) the run refuses.
        _in_object_store(store, storage, "S3OLD2")
        refused = store.cli("retention", "run")
        assert refused.exit_code == 1 and "object store" in refused.output
        assert store.row("S3OLD2").wrapped_key is not None


def test_run_without_rules_says_how_to_set_them(tmp_path: Path) -> None:
    config = tmp_path / "phigate.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data")}))
    result = CliRunner().invoke(main, ["retention", "run", "-c", str(config)])
    assert result.exit_code == 2
    assert "set archive.retention.rules_file" in result.output


def test_raw_database_has_no_canary_in_records_or_audit(sqlite_store: Store) -> None:
    s = sqlite_store
    s.add("OLD1", 7 * YEAR, content=CANARY)
    s.json("retention", "run")
    conn = sqlite3.connect(s.tmp / "phigate.db")
    try:
        for table in ("destruction_records", "audit_events", "archived_messages"):
            for row in conn.execute(f"SELECT * FROM {table}"):
                assert "Jane Roe" not in repr(row) and "CANARY" not in repr(row)
    finally:
        conn.close()
