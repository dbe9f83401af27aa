"""The archive's copy of every accepted message: written with it, sealed under the
archive's own keys, kept after the queue shreds its copy, byte-identical to what
was accepted, and nowhere in clear.

End to end over SMTP with a real server process, SQLite files read raw, and an
S3-compatible server (moto's) on loopback for storage kind s3.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import sqlite3
from pathlib import Path

import pytest
from archive_copies import BUCKET, Opened, open_archived, s3_server
from cryptography.exceptions import InvalidTag
from databases import fresh_database
from harness import Phigate, Sink, free_port, message, settings_for, via_sink, wait_until
from stores import accept

from gateway import app, datadir
from gateway.archive.records import MESSAGE, PORTAL_REPLY
from gateway.archive.storage import DatabaseStorage, S3Storage
from gateway.config import ArchiveStorageConfig, Settings
from gateway.intake import Submission
from gateway.portal.outbox import LISTENER as PORTAL_LISTENER
from gateway.settings_loader import SettingsError, load_settings
from gateway.store.keyring import Keyring, Sealed

CANARY_SUBJECT = "Vellichor canary subject 5521"
CANARY_BODY = "Quarzfenster canary body text 8813"
PHI_BODY = "Patient: Zebulon Quimby\r\nDOB: 03/14/1961   MRN: 40719322\r\n"
POLICY = """\
version: 1
rules:
  - id: everything
    action: deliver
    via: [standard]
"""
SENDER = "records@clinic.example.org"


def _policy_dir(tmp_path: Path) -> str:
    directory = tmp_path / "policy"
    directory.mkdir()
    (directory / "policy.yaml").write_text(POLICY)
    return str(directory)


def _rows(db_path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _raw_files(db_path: Path) -> bytes:
    return b"".join(
        path.read_bytes()
        for path in (db_path, db_path.with_name(db_path.name + "-wal"))
        if path.exists()
    )


def _categories(db_path: Path) -> dict[str, str]:
    """Queue id -> the category the policy decided, from the audit trail."""
    rows = _rows(db_path, "SELECT queue_id, detail FROM audit_events WHERE event = 'policy'")
    found = {}
    for queue_id, detail in rows:
        match = re.search(r"category=(\w+)", str(detail))
        assert match is not None
        found[str(queue_id)] = match.group(1)
    return found


# --- the keyring: one encryption, two wrapped keys ---------------------------


def test_seal_shared_opens_with_either_keyring_alone(tmp_path: Path) -> None:
    queue = Keyring.create(tmp_path / "queue")
    archive = Keyring.create(tmp_path / "archive")
    mine, theirs = queue.seal_shared(b"the accepted bytes", b"Q1", archive)
    assert mine.ciphertext is theirs.ciphertext  # encrypted once
    assert mine.wrapped_key != theirs.wrapped_key
    assert queue.open(mine, b"Q1") == archive.open(theirs, b"Q1") == b"the accepted bytes"
    # Each wrapped key is for its own master key only, and the context stays bound.
    with pytest.raises(InvalidTag):
        archive.unwrap(theirs.key_id, mine.wrapped_key)
    with pytest.raises(InvalidTag):
        archive.open(theirs, b"Q2")


def test_rotating_the_queue_keys_leaves_the_archive_copy_readable(tmp_path: Path) -> None:
    queue = Keyring.create(tmp_path / "queue")
    archive = Keyring.create(tmp_path / "archive")
    _, archived = queue.seal_shared(b"kept for years", b"Q1", archive)
    old = queue.current_key_id
    queue.rotate()
    queue.remove(old)
    assert archive.open(archived, b"Q1") == b"kept for years"


# --- end to end, storage in the database ---------------------------------------


def _send_two(gw: Phigate, secret: str) -> tuple[bytes, bytes]:
    """A message without PHI (canaries in subject and body) to two recipients, and one
    with PHI to one; both as submitted."""
    plain = message(SENDER, "dr@partner.test", CANARY_SUBJECT, CANARY_BODY, message_id="<m1@x>")
    phi = message(SENDER, "dr@partner.test", "Results", PHI_BODY, message_id="<m2@x>")
    assert gw.submit(secret, SENDER, ["dr@partner.test", "nurse@other.test"], plain) == {}
    assert gw.submit(secret, SENDER, ["dr@partner.test"], phi) == {}
    return plain, phi


def _check_archived(gw: Phigate, opened: list[Opened], plain: bytes, phi: bytes) -> None:
    first, second = opened
    categories = _categories(gw.db_path)
    assert first.content.endswith(plain) and first.content.startswith(b"Received: ")
    assert second.content.endswith(phi)
    assert first.entry.recipients == ("dr@partner.test", "nurse@other.test")
    assert second.entry.recipients == ("dr@partner.test",)
    assert (first.entry.phi, second.entry.phi) == (False, True)
    assert first.entry.kind == second.entry.kind == MESSAGE
    assert first.entry.message_id == "<m1@x>"
    assert (first.entry.principal, first.entry.sender) == ("ehr1", SENDER)
    for archived in opened:
        assert archived.entry.category == categories[archived.entry.queue_id]


def _check_no_canary(gw: Phigate) -> None:
    for canary in (CANARY_SUBJECT, CANARY_BODY, "Zebulon Quimby", "40719322"):
        assert canary.encode() not in _raw_files(gw.db_path), canary
        assert canary not in gw.log_text(), canary


def _queue_shredded(gw: Phigate) -> bool:
    rows = _rows(gw.db_path, "SELECT wrapped_key IS NULL AND content IS NULL FROM messages")
    return len(rows) == 2 and all(row[0] for row in rows)


def test_archived_copy_outlives_the_queue_and_opens_to_the_accepted_bytes(
    tmp_path: Path,
) -> None:
    with Sink() as sink:
        gw = Phigate(
            tmp_path,
            delivery=via_sink(sink, tls="none"),
            policy_dir=_policy_dir(tmp_path),
            archive={"enabled": True},
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            plain, phi = _send_two(gw, secret)
            delivered = sink.wait_for(2)
            wait_until(lambda: _queue_shredded(gw))
            _check_no_canary(gw)  # while the server holds the WAL open
        settings_path = Path(gw.settings["data_dir"])
        opened = open_archived(
            f"sqlite:///{gw.db_path}", settings_path / "keys" / "archive", DatabaseStorage()
        )
        _check_archived(gw, opened, plain, phi)
        # What was delivered is what was archived (no rewrite, no signature on this path).
        assert {m.content for m in delivered} == {o.content for o in opened}
        assert {hashlib.sha256(m.content).hexdigest() for m in delivered} == {
            o.entry.sha256 for o in opened
        }
        # The queue's keys do not open the archive's copy: each has its own.
        archive_key_ids = {r[0] for r in _rows(gw.db_path, "SELECT key_id FROM archived_messages")}
        assert archive_key_ids.isdisjoint(Keyring(settings_path / "keys").key_ids)
        _check_no_canary(gw)


def test_archive_off_keeps_nothing(tmp_path: Path) -> None:
    with Sink() as sink:
        gw = Phigate(
            tmp_path, delivery=via_sink(sink, tls="none"), policy_dir=_policy_dir(tmp_path)
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            _send_two(gw, secret)
            sink.wait_for(2)
        assert _rows(gw.db_path, "SELECT count(*) FROM archived_messages") == [(0,)]
        assert _rows(gw.db_path, "SELECT count(*) FROM archived_recipients") == [(0,)]
        assert not (Path(gw.settings["data_dir"]) / "keys" / "archive").exists()


# --- end to end, storage in S3 --------------------------------------------------


def test_s3_storage_keeps_the_ciphertext_in_an_object_and_the_key_in_the_row(
    tmp_path: Path,
) -> None:
    with Sink() as sink, s3_server(tmp_path) as s3:
        gw = Phigate(
            tmp_path,
            delivery=via_sink(sink, tls="none"),
            policy_dir=_policy_dir(tmp_path),
            archive={"enabled": True, "storage": s3.settings()},
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            plain, phi = _send_two(gw, secret)
            sink.wait_for(2)
            wait_until(lambda: _queue_shredded(gw))
            _check_no_canary(gw)
        rows = _rows(
            gw.db_path, "SELECT queue_id, storage, object_key, content FROM archived_messages"
        )
        assert [(r[1], r[2], r[3]) for r in rows] == [("s3", f"archive/{r[0]}", None) for r in rows]
        objects = s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]
        assert sorted(o["Key"] for o in objects) == sorted(f"archive/{r[0]}" for r in rows)
        for item in objects:
            body = s3.client().get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            assert CANARY_BODY.encode() not in body and b"Zebulon" not in body
        storage = S3Storage(ArchiveStorageConfig.model_validate(s3.settings()), s3.credentials_file)
        data_dir = Path(gw.settings["data_dir"])
        opened = open_archived(f"sqlite:///{gw.db_path}", data_dir / "keys" / "archive", storage)
        _check_archived(gw, opened, plain, phi)


def test_a_failing_s3_put_refuses_the_message_with_451_and_keeps_nothing(
    tmp_path: Path,
) -> None:
    with Sink() as sink, s3_server(tmp_path) as s3:
        gw = Phigate(
            tmp_path,
            delivery=via_sink(sink, tls="none"),
            policy_dir=_policy_dir(tmp_path),
            archive={"enabled": True, "storage": s3.settings(bucket="not-made-yet")},
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        raw = message(SENDER, "dr@partner.test", CANARY_SUBJECT, CANARY_BODY)
        with gw:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                gw.submit(secret, SENDER, ["dr@partner.test"], raw)
            assert refused.value.smtp_code == 451
            assert b"could not be archived" in refused.value.smtp_error
            assert _rows(gw.db_path, "SELECT count(*) FROM messages") == [(0,)]
            assert _rows(gw.db_path, "SELECT count(*) FROM archived_messages") == [(0,)]
            assert '"problem":"S3 put to bucket not-made-yet failed: NoSuchBucket"' in (
                gw.log_text()
            )
            # Once the store is back, the client's retry goes through.
            s3.client().create_bucket(Bucket="not-made-yet")
            assert gw.submit(secret, SENDER, ["dr@partner.test"], raw) == {}
            sink.wait_for(1)
        assert _rows(gw.db_path, "SELECT count(*) FROM archived_messages") == [(1,)]
        assert CANARY_BODY not in gw.log_text()


# --- intake as the server wires it: portal replies, failed stores -------------


def _settings(tmp_path: Path, database_url: str | None = None, **archive: object) -> Settings:
    database = {"database_url": database_url} if database_url else {}
    settings = Settings.model_validate(
        settings_for(
            tmp_path / "data", free_port(), archive={"enabled": True, **archive}, **database
        )
    )
    datadir.prepare_data_dir(settings, generate_cert=True)
    return settings


def _submission(listener: str, content: bytes) -> Submission:
    return Submission(
        listener=listener,
        principal=None,
        client_ip="127.0.0.1",
        helo=None,
        tls=False,
        authenticated=False,
        sender="portal@phigate.test",
        recipients=("a@clinic.example.org",),
        content=content,
    )


@pytest.mark.store
def test_a_portal_reply_is_archived_as_one(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as database_url:
        settings = _settings(tmp_path, database_url)
        parts = app.build(settings)
        try:
            content = b"Subject: Re: results\r\n\r\nThank you\r\n"
            reply = accept(parts, _submission(PORTAL_LISTENER, content))
            assert reply.startswith("250 ")
        finally:
            parts.close()
        [opened] = open_archived(
            settings.db_url, settings.path(settings.archive.keys_dir), DatabaseStorage()
        )
    assert opened.entry.kind == PORTAL_REPLY and opened.entry.sender == "portal@phigate.test"
    assert opened.content.endswith(content)


def test_a_large_message_is_archived_whole_and_queued_in_its_file(tmp_path: Path) -> None:
    """Past limits.large_message_size, on SQLite: one encryption still serves both the
    queue's copy, in its file, and the archive's, in its row."""
    settings = _settings(tmp_path)
    content = b"Subject: scan\r\n\r\n" + b"a line of a scanned referral\r\n" * 60_000
    parts = app.build(settings)
    try:
        assert accept(parts, _submission("submission", content)).startswith("250 ")
        assert parts.db.contents is not None
        row = "SELECT queue_id, key_id, wrapped_key, content FROM messages"
        [(queue_id, key_id, wrapped, in_row)] = _rows(settings.path("phigate.db"), row)
        assert in_row is None
        in_file = parts.db.contents.read(str(queue_id))
    finally:
        parts.close()
    queue_copy = Keyring(settings.path(settings.keys_dir)).open(
        Sealed(str(key_id), bytes(wrapped), in_file), str(queue_id).encode()
    )
    [opened] = open_archived(
        settings.db_url, settings.path(settings.archive.keys_dir), DatabaseStorage()
    )
    assert opened.content == queue_copy and queue_copy.endswith(content)


@pytest.mark.store
def test_a_failed_store_leaves_no_archive_row(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as database_url:
        parts = app.build(_settings(tmp_path, database_url))
        try:
            with parts.db.transaction() as conn:
                conn.exec_driver_sql("DROP TABLE jobs")  # the accept's transaction cannot complete
            reply = accept(parts, _submission("submission", b"Subject: s\r\n\r\nbody\r\n"))
            assert reply.startswith("451 4.3.0")
            with parts.db.reading() as conn:
                assert conn.exec_driver_sql("SELECT count(*) FROM archived_messages").scalar() == 0
        finally:
            parts.close()


# --- settings and start-up: what is wrong, where, and the fix --------------------


def test_s3_settings_name_what_is_missing(tmp_path: Path) -> None:
    config = tmp_path / "phigate.yaml"
    config.write_text(
        "archive:\n  enabled: true\n  storage:\n    kind: s3\n    endpoint_url: minio:9000\n"
    )
    with pytest.raises(SettingsError) as info:
        load_settings(config)
    text = str(info.value)
    assert (
        "phigate.yaml:5:" in text
        and "is not a URL" in text
        and "https://minio.internal:9000" in text
    )
    config.write_text("archive:\n  enabled: true\n  storage:\n    kind: s3\n")
    with pytest.raises(SettingsError) as info:
        load_settings(config)
    assert "kind s3 needs `bucket: NAME`" in str(info.value)


def test_a_credentials_file_others_can_read_stops_start_up(tmp_path: Path) -> None:
    credentials = tmp_path / "s3-credentials"
    credentials.write_text("[default]\naws_access_key_id = a\naws_secret_access_key = b\n")
    credentials.chmod(0o644)
    storage = {"kind": "s3", "bucket": "b", "credentials_file": str(credentials)}
    settings = _settings(tmp_path, storage=storage)
    with pytest.raises(app.StartupError) as info:
        app.archive_writer(settings)
    assert f"run `chmod 600 {credentials}`" in str(info.value)
    credentials.unlink()
    with pytest.raises(app.StartupError) as info:
        app.archive_writer(settings)
    assert "cannot be read" in str(info.value) and "credentials_file: null" in str(info.value)


def test_config_check_shows_the_archive(tmp_path: Path) -> None:
    gw = Phigate(tmp_path, archive={"enabled": True, "storage": {"kind": "s3", "bucket": "kept"}})
    shown = gw.cli("config", "check").stdout
    assert "archive: storage=s3 bucket=kept keys=keys/archive" in shown
