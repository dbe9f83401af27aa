"""The store on a real SQLite file: claiming, leases, encryption, rotation, audit chain."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.audit.verify import verify
from gateway.store import database, queue, rotation
from gateway.store.database import Database, head_revision, schema_revision
from gateway.store.keyring import Keyring, KeyringError
from gateway.store.schema import metadata


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite always: these tests read and edit the database file itself."""
    return f"sqlite:///{tmp_path / 'phigate.db'}"


def _enqueue_in(
    conn: Connection, keyring: Keyring, recipients: int = 1, content: bytes = b"x"
) -> str:
    """Queue one message with `recipients` jobs in the caller's transaction."""
    queue_id = queue.new_queue_id()
    record = queue.NewMessage(
        queue_id,
        time.time(),
        "test",
        "p",
        "127.0.0.1",
        "a@b.example",
        len(content),
        None,
        keyring.seal(content, queue_id.encode()),
    )
    jobs = [queue.NewJob(f"r{i}@c.example", queue.DEFAULT_ROUTE) for i in range(recipients)]
    queue.insert_message(conn, record, jobs)
    return queue_id


def _enqueue(db: Database, keyring: Keyring, recipients: int, content: bytes = b"x") -> str:
    with db.transaction() as conn:
        return _enqueue_in(conn, keyring, recipients, content)


def test_migrations_match_the_models(db: Database) -> None:
    with db.write_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert schema_revision(conn) == head_revision()
    assert diff == []


def test_the_head_revision_is_alembics() -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(database.__file__).parent / "migrations"))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_a_current_schema_is_opened_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    Database(url).migrate()
    opened = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from gateway.store.database import Database;"
            f"Database({url!r}).migrate(); print('alembic' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert opened.stdout.strip() == "False"


def test_concurrent_claimers_never_share_a_job(
    tmp_path: Path, db: Database, keyring: Keyring
) -> None:
    for _ in range(50):
        _enqueue(db, keyring, 4)
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        # A separate engine, as a second process would have.
        own = Database(db.url, audit_key=db.audit_key)
        try:
            while True:
                with own.transaction() as conn:
                    jobs = queue.claim(conn, name, time.time(), 60, 7)
                if not jobs:
                    return
                with lock:
                    claimed.extend(j.id for j in jobs)
        finally:
            own.close()

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(claimed) == 200
    assert len(set(claimed)) == 200


def test_expired_lease_is_claimed_again_and_late_result_is_dropped(
    db: Database, keyring: Keyring
) -> None:
    _enqueue(db, keyring, 1)
    now = time.time()
    with db.transaction() as conn:
        first = queue.claim(conn, "dead-worker", now, 5, 10)
        assert queue.claim(conn, "other", now + 1, 5, 10) == []  # lease still held
        second = queue.claim(conn, "other", now + 6, 5, 10)  # lease lapsed
        assert [j.id for j in second] == [j.id for j in first]
        late = queue.finish_job(
            conn,
            first[0].id,
            "dead-worker",
            state=queue.DELIVERED,
            now=now + 7,
            attempts_done=1,
            code=250,
            status="2.0.0",
            reply="ok",
            remote_host=None,
        )
        assert late is False


def test_only_the_leases_of_jobs_in_progress_are_renewed(db: Database, keyring: Keyring) -> None:
    # A job its worker dropped (no result recorded) keeps the lease it had and
    # lapses, to be claimed again, even while that worker renews its other leases.
    _enqueue(db, keyring, 2)
    now = time.time()
    with db.transaction() as conn:
        working, dropped = queue.claim(conn, "w", now, 5, 10)
        renewed = queue.renew_leases(conn, owner="w", until=now + 100, job_ids=[working.id])
        assert renewed == 1
        assert [j.id for j in queue.claim(conn, "other", now + 6, 5, 10)] == [dropped.id]


def test_release_leases_makes_jobs_due_at_once(db: Database, keyring: Keyring) -> None:
    _enqueue(db, keyring, 3)
    now = time.time()
    with db.transaction() as conn:
        assert len(queue.claim(conn, "w", now, 300, 10)) == 3
        assert queue.release_leases(conn, "w", now) == 3
        assert len(queue.claim(conn, "w2", now, 300, 10)) == 3


def test_content_is_sealed_per_message_and_bound_to_its_queue_id(keyring: Keyring) -> None:
    a = keyring.seal(b"CANARY-PLAIN", b"Q1")
    b = keyring.seal(b"CANARY-PLAIN", b"Q1")
    assert a.ciphertext != b.ciphertext and a.wrapped_key != b.wrapped_key
    assert b"CANARY" not in a.ciphertext
    assert keyring.open(a, b"Q1") == b"CANARY-PLAIN"
    with pytest.raises(InvalidTag):
        keyring.open(a, b"Q2")  # ciphertext moved to another message does not open


def test_master_key_files_are_private(tmp_path: Path, keyring: Keyring) -> None:
    for path in (tmp_path / "keys").glob("*.key"):
        assert path.stat().st_mode & 0o777 == 0o600
        path.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        Keyring(tmp_path / "keys")


def test_rotation_rewraps_so_old_master_key_can_be_removed(
    tmp_path: Path, db: Database, keyring: Keyring
) -> None:
    queue_id = _enqueue(db, keyring, 1, b"secret content")
    old_key = keyring.current_key_id
    done = rotation.rotate(db, keyring, tmp_path, timeout=1.0)
    new_key = done.key_id
    assert done.rewrapped == 1 and new_key != old_key
    rotation.retire(db, keyring, tmp_path, old_key)
    assert not (tmp_path / "keys" / f"{old_key}.key").exists()
    fresh = Keyring(tmp_path / "keys")
    with db.reading() as conn:
        loaded = queue.load_messages(conn, [queue_id], 1024).get(queue_id)
    assert loaded is not None and loaded.sealed is not None
    assert loaded.sealed.key_id == new_key
    assert fresh.open(loaded.sealed, queue_id.encode()) == b"secret content"


def test_a_large_message_is_loaded_only_when_asked_for(db: Database, keyring: Keyring) -> None:
    queue_id = _enqueue(db, keyring, 1, b"x" * 5000)
    with db.reading() as conn:
        small = queue.load_messages(conn, [queue_id], 5000)[queue_id]
        large = queue.load_messages(conn, [queue_id], 4999)[queue_id]
        sealed = queue.load_sealed(conn, queue_id, db.contents)
    assert not small.large and small.sealed is not None
    assert large.large and large.sealed is None and large.sender == small.sender
    assert sealed == small.sealed
    assert keyring.open(sealed, queue_id.encode()) == b"x" * 5000
    with db.transaction() as conn:
        queue.delete_message(conn, queue_id, time.time())
    with db.reading() as conn:
        assert queue.load_sealed(conn, queue_id, db.contents) is None


def test_audit_chain_detects_edits_and_deletions(tmp_path: Path, db: Database) -> None:
    assert db.audit_key is not None
    with db.transaction() as conn:
        trail.append(
            conn,
            [AuditEvent(event="accepted", result="queued", queue_id=f"Q{i}") for i in range(5)],
        )
    with db.reading() as conn:
        report = verify(conn, db.audit_key)
    assert (report.events, report.problems) == (5, [])
    raw = sqlite3.connect(tmp_path / "phigate.db")
    raw.execute("UPDATE audit_events SET result='forged' WHERE id=2")
    raw.execute("DELETE FROM audit_events WHERE id=4")
    raw.commit()
    with db.reading() as conn:
        report = verify(conn, db.audit_key)
    assert report.events == 4
    assert {p.event_id for p in report.problems} == {2, 5}


def test_group_commit_answers_each_writer_after_one_durable_commit(
    db: Database, keyring: Keyring
) -> None:
    async def many() -> list[int]:
        db.start()
        try:
            return await asyncio.gather(*(db.write(lambda conn, i=i: i) for i in range(100)))
        finally:
            db.stop()

    assert asyncio.run(many()) == list(range(100))
    assert db.batches < 100  # writes were batched into fewer transactions


def test_failing_write_does_not_sink_its_batch(db: Database, keyring: Keyring) -> None:
    async def mixed() -> list[object]:
        db.start()
        try:

            def boom(_conn: object) -> None:
                raise ValueError("bad op")

            ok = [db.write(lambda conn: _enqueue_in(conn, keyring)) for _ in range(5)]
            return await asyncio.gather(db.write(boom), *ok, return_exceptions=True)
        finally:
            db.stop()

    results = asyncio.run(mixed())
    assert isinstance(results[0], ValueError)
    assert all(isinstance(r, str) for r in results[1:])
    with db.reading() as conn:
        assert len(queue.list_jobs(conn, [queue.QUEUED], 100)) == 5


def test_a_job_keeps_its_modes_and_rewrite_from_intake_to_the_claim(
    db: Database, keyring: Keyring
) -> None:
    """The route and the header changes travel as typed values; their stored forms
    (a comma-separated route, the rewrite's JSON) are the queue's own business."""
    rewrite = queue.Rewrite(
        subject="Secure message",
        headers=(("X-Phigate-Category", "phi"), ("X-Note", 'quote " and ü')),
        footer="Example Clinic\n1 Main St",
    )
    queue_id = queue.new_queue_id()
    record = queue.NewMessage(
        queue_id, time.time(), "test", "p", "127.0.0.1", "a@b.example", 1, None,
        keyring.seal(b"x", queue_id.encode()),
    )  # fmt: skip
    jobs = [
        queue.NewJob("a@c.example", ("tls", "smime", "portal"), rewrite=rewrite),
        queue.NewJob("b@c.example", queue.DEFAULT_ROUTE),
    ]
    with db.transaction() as conn:
        queue.insert_message(conn, record, jobs)
        stored = conn.exec_driver_sql(
            "SELECT route, rewrite FROM jobs WHERE queue_id = ? ORDER BY id", (queue_id,)
        ).all()
    assert stored[0][0] == "tls,smime,portal" and stored[1] == ("standard", None)
    assert stored[0][1] == rewrite.to_json()
    with db.transaction() as conn:
        claimed = queue.claim(conn, "w", time.time() + 1, 60, 10)
    assert [(j.recipient, j.via, j.rewrite) for j in claimed] == [
        ("a@c.example", ("tls", "smime", "portal"), rewrite),
        ("b@c.example", ("standard",), None),
    ]


@pytest.mark.parametrize(
    ("rewrite", "text"),
    [
        (queue.Rewrite(), '{"subject": null, "headers": []}'),
        (
            queue.Rewrite("Neutral", (("X-A", "1"),)),
            '{"subject": "Neutral", "headers": [["X-A", "1"]]}',
        ),
        (
            queue.Rewrite(None, (), "1 Main St"),
            '{"subject": null, "headers": [], "footer": "1 Main St"}',
        ),
    ],
)
def test_rewrite_json_is_the_stored_form(rewrite: queue.Rewrite, text: str) -> None:
    """The JSON jobs already stored hold: written the same way, read back the same."""
    assert rewrite.to_json() == text
    assert queue.Rewrite.from_json(text) == rewrite
