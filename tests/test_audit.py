"""The audit trail as an attacker with write access to the database meets it, and
as an admin checks it: `phigate audit verify` and `phigate audit checkpoint`
on a real data dir, checkpoints from a running server, and concurrent writers
on a real PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from databases import postgres_database
from harness import Phigate, wait_until

from gateway import datadir
from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.audit.verify import verify
from gateway.settings_loader import load_settings
from gateway.store.audit_key import AuditKey
from gateway.store.database import Database
from gateway.store.keyfiles import create_key_file


def add_principals(gw: Phigate, *names: str) -> None:
    """One audit event per name, each in its own transaction, as `principal add`
    writes them (in this process: quicker than a CLI run per event)."""
    db = datadir.open_database(load_settings(gw.config))
    try:
        for name in names:
            with db.transaction() as conn:
                trail.append(conn, [AuditEvent("principal", "added", principal=name)])
    finally:
        db.close()


def audit_verify(gw: Phigate, *args: str) -> subprocess.CompletedProcess[str]:
    return gw.cli("audit", "verify", *args, check=False)


def verify_json(gw: Phigate, *args: str) -> tuple[int, dict[str, Any]]:
    result = audit_verify(gw, "--json", *args)
    return result.returncode, json.loads(result.stdout)


def sql(gw: Phigate, statement: str, *params: object) -> list[tuple[Any, ...]]:
    """What an attacker with write access to the database file can do."""
    with sqlite3.connect(gw.db_path) as db:
        rows = db.execute(statement, params).fetchall()
    db.close()
    return rows


def rechain_with_sha256(gw: Phigate, from_id: int) -> None:
    """Recompute every hash from `from_id` on with plain SHA-256, as the chain
    was computed before it was keyed: all an attacker without the key can do."""
    with sqlite3.connect(gw.db_path) as db:
        db.row_factory = sqlite3.Row
        prev = db.execute(
            "SELECT hash FROM audit_events WHERE id < ? ORDER BY id DESC LIMIT 1", (from_id,)
        ).fetchone()
        prev_hash = prev["hash"] if prev else trail.GENESIS
        rows = db.execute("SELECT * FROM audit_events WHERE id >= ? ORDER BY id", (from_id,))
        for row in rows.fetchall():
            data = trail.hashed_fields(row["chain_version"], dict(row))
            payload = json.dumps(data, sort_keys=True, separators=(",", ":"))
            digest = hashlib.sha256((prev_hash + payload).encode()).hexdigest()
            db.execute(
                "UPDATE audit_events SET prev_hash = ?, hash = ? WHERE id = ?",
                (prev_hash, digest, row["id"]),
            )
            prev_hash = digest
    db.close()


def test_an_edited_event_rechained_without_the_key_is_named(tmp_path: Path) -> None:
    gw = Phigate(tmp_path)
    add_principals(gw, "ehr1", "ehr2", "crm", "billing", "lab")
    assert audit_verify(gw).returncode == 0
    sql(gw, "UPDATE audit_events SET detail = 'domains=attacker.example' WHERE id = 2")
    rechain_with_sha256(gw, 2)

    result = audit_verify(gw)
    assert result.returncode == 1, result.stdout
    assert result.stdout.startswith("event 2: ")
    assert "first bad event: 2" in result.stderr
    code, report = verify_json(gw)
    assert code == 1
    assert report["first_bad_event"] == 2
    assert not report["truncated"]
    assert [p["event_id"] for p in report["problems"]] == [2, 3, 4, 5]


def test_a_truncated_trail_is_reported_against_the_last_checkpoint(tmp_path: Path) -> None:
    gw = Phigate(tmp_path)
    add_principals(gw, "ehr1", "ehr2", "crm", "billing")
    exported = tmp_path / "checkpoint.json"
    made = json.loads(gw.cli("audit", "checkpoint", "--json", "--output", str(exported)).stdout)
    assert (made["event_id"], made["count"]) == (4, 4)
    assert json.loads(exported.read_text())["signature"] == made["signature"]
    add_principals(gw, "lab")
    sql(gw, "DELETE FROM audit_events WHERE id >= 3")  # the newest three of five

    code, report = verify_json(gw)
    assert code == 1
    assert report["truncated"] is True
    assert report["first_bad_event"] == 4  # the checkpointed event that is gone
    assert "truncated" in report["problems"][0]["reason"]
    result = audit_verify(gw)
    assert "audit trail truncated" in result.stderr

    # Wiping the checkpoint table too: the trail no longer proves its length,
    # and the checkpoint kept elsewhere still shows what is missing.
    sql(gw, "DELETE FROM audit_checkpoints")
    code, report = verify_json(gw)
    assert code == 1 and report["first_bad_event"] is None
    assert "no checkpoint" in report["problems"][0]["reason"]
    code, report = verify_json(gw, "--checkpoint", str(exported))
    assert code == 1 and report["truncated"] is True and report["first_bad_event"] == 4


def test_the_running_server_records_checkpoints_that_expose_truncation(tmp_path: Path) -> None:
    gw = Phigate(tmp_path, audit={"checkpoint_every_events": 2, "checkpoint_every_seconds": 0.2})
    secret = gw.add_principal("ehr1", "example.org")
    with gw:
        for _ in range(3):
            gw.submit(secret, "a@example.org", ["b@example.net"])

        def head_checkpointed() -> bool:
            head = sql(gw, "SELECT max(id) FROM audit_events")[0][0]
            return bool(sql(gw, "SELECT 1 FROM audit_checkpoints WHERE event_id = ?", head))

        wait_until(head_checkpointed)
        gw.kill()  # no checkpoint at shutdown: the periodic ones must do
    # The CLI signed only the empty chain; every later checkpoint is the server's.
    newest = sql(gw, "SELECT max(event_id) FROM audit_checkpoints")[0][0]
    assert newest > 6
    assert audit_verify(gw).returncode == 0
    sql(gw, "DELETE FROM audit_events WHERE id > ?", newest - 2)
    # The first checkpoint naming a removed event (how events were batched into
    # checkpoints depends on timing; newest at the latest).
    first_cut = sql(
        gw, "SELECT min(event_id) FROM audit_checkpoints WHERE event_id > ?", newest - 2
    )

    code, report = verify_json(gw)
    assert code == 1
    assert report["truncated"] is True
    assert report["first_bad_event"] == first_cut[0][0]
    assert report["last_event_id"] == newest - 2


def test_events_from_before_the_key_still_verify_and_cannot_be_downgraded(
    tmp_path: Path,
) -> None:
    gw = Phigate(tmp_path)
    # A trail written before the upgrade: plain SHA-256, no checkpoints.
    for name in ("old1", "old2", "old3"):
        sql(
            gw,
            "INSERT INTO audit_events (ts, event, principal, recipients, result, prev_hash, hash)"
            " VALUES (?, 'principal', ?, '[]', 'added', '', '')",
            time.time(),
            name,
        )
    rechain_with_sha256(gw, 1)
    add_principals(gw, "new1", "new2")
    versions = sql(gw, "SELECT id, chain_version FROM audit_events ORDER BY id")
    assert versions == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)]
    code, report = verify_json(gw)
    assert (code, report["events"]) == (0, 5), report
    # The switch-over was signed when the first keyed event was written.
    assert sql(gw, "SELECT event_id, count FROM audit_checkpoints") == [(3, 3)]

    # Rewriting the keyed events as "old" ones is a downgrade.
    sql(gw, "UPDATE audit_events SET chain_version = 1 WHERE id >= 4")
    sql(gw, "UPDATE audit_events SET principal = 'forged' WHERE id = 4")
    rechain_with_sha256(gw, 4)
    code, report = verify_json(gw)
    assert code == 1 and report["first_bad_event"] == 4


def test_verify_without_the_audit_key_says_what_is_missing(tmp_path: Path) -> None:
    gw = Phigate(tmp_path)
    add_principals(gw, "ehr1")
    key_file = tmp_path / "data" / "keys" / "audit.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key_file.unlink()

    result = audit_verify(gw)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"phigate: no audit key at {key_file}: restore it")
    assert "Traceback" not in result.stderr
    # Nor can anything be appended to the trail without it.
    added = gw.cli("principal", "add", "ehr2", "--domain", "b.example", check=False)
    assert added.returncode != 0 and "Traceback" not in added.stderr
    assert "audit key" in added.stderr


def test_serve_refuses_to_extend_a_trail_keyed_with_another_key(tmp_path: Path) -> None:
    gw = Phigate(tmp_path)
    add_principals(gw, "ehr1")
    key_file = tmp_path / "data" / "keys" / "audit.key"
    key_file.unlink()
    create_key_file(key_file)  # a new key, as if the old one were lost
    with pytest.raises(RuntimeError, match="is not the one the audit trail was keyed with"):
        gw.start()


# --- PostgreSQL: several writers on one chain --------------------------------------


def test_concurrent_writers_on_postgresql_keep_one_linear_chain(tmp_path: Path) -> None:
    key = AuditKey(os.urandom(32))
    writers, appends = 4, 40
    with postgres_database(tmp_path) as url:
        setup = Database(url, audit_key=key)
        setup.migrate()
        start = threading.Barrier(writers)
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            own = Database(url, audit_key=key)  # its own engine, as another node would have
            try:
                start.wait()
                for i in range(appends):
                    with own.transaction() as conn:
                        trail.append(conn, [AuditEvent("test", "ok", queue_id=f"W{n}-{i}")])
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)
            finally:
                own.close()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        with setup.reading() as conn:
            report = verify(conn, key)
            links = conn.exec_driver_sql("SELECT prev_hash FROM audit_events").scalars().all()
        setup.close()
    assert report.events == writers * appends
    assert report.problems == []
    assert len(set(links)) == len(links)  # no two events extend the same head
