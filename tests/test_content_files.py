"""Large contents in files of their own beside SQLite (gateway/store/contents.py):
durable before 250, read at delivery, removed once shredded, nothing left behind."""

from __future__ import annotations

import dataclasses
import os
import smtplib
import socket
import sqlite3
import struct
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from harness import Phigate, Sink, message, via_sink, wait_until
from sqlalchemy import update
from test_policy_server import write_policy

from gateway.store import queue
from gateway.store.contents import ContentMissing
from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.store.schema import messages

# Above limits.large_message_size (1 MiB by default): kept in a file.
LARGE_BODY = "line of a scanned referral, kept as it is\r\n" * 30_000


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite always: the files are SQLite's (PostgreSQL keeps every content in its row)."""
    return f"sqlite:///{tmp_path / 'phigate.db'}"


def _store(db: Database, keyring: Keyring, content: bytes) -> str:
    """Queue one message as intake does with a large one: its file, then its row."""
    assert db.contents is not None
    queue_id = queue.new_queue_id()
    sealed = keyring.seal_to((content,), queue_id.encode(), partial(db.contents.write, queue_id))
    record = queue.NewMessage(
        queue_id,
        time.time(),
        "test",
        None,
        "127.0.0.1",
        "a@clinic.example.org",
        len(content),
        None,
        sealed,
        content_in_file=True,
    )
    with db.transaction() as conn:
        queue.insert_message(conn, record, [queue.NewJob("b@partner.test", ("tls",))])
    return queue_id


def test_a_content_sealed_as_it_is_written_opens_as_one_sealed_whole(tmp_path: Path) -> None:
    keyring = Keyring.create(tmp_path / "keys")
    header, body = b"Received: by phigate\r\n", os.urandom(3 * 1024 * 1024 + 7)
    pieces: list[bytes] = []
    sealed = keyring.seal_to((header, body), b"Q1", pieces.extend)
    # Handed on piece by piece, none near the content's size; the row keeps the key alone.
    assert sealed.ciphertext == b"" and len(pieces) > 4
    assert max(map(len, pieces)) <= 1024 * 1024 + 16
    whole = dataclasses.replace(sealed, ciphertext=b"".join(pieces))
    assert header not in whole.ciphertext and body[:64] not in whole.ciphertext  # no clear text
    assert len(whole.ciphertext) == 12 + len(header) + len(body) + 16  # nonce, text, tag
    assert keyring.open(whole, b"Q1") == header + body
    with pytest.raises(InvalidTag):  # bound to its queue ID as `seal` binds it
        keyring.open(whole, b"Q2")
    tampered = bytearray(whole.ciphertext)
    tampered[len(tampered) // 2] ^= 1
    with pytest.raises(InvalidTag):
        keyring.open(dataclasses.replace(whole, ciphertext=bytes(tampered)), b"Q1")


def _send_large(client: smtplib.SMTP, recipient: str) -> tuple[int, bytes]:
    """MAIL, RCPT and DATA of a large message on a logged-in session; DATA's reply."""
    client.mail("a@clinic.example.org")
    client.rcpt(recipient)
    return client.data(message("a@clinic.example.org", recipient, "scan", LARGE_BODY))


def _age(db: Database, queue_id: str, seconds: float) -> None:
    assert db.contents is not None
    then = time.time() - seconds
    os.utime(db.contents.path(queue_id), (then, then))


def test_a_content_in_its_file_is_read_back_and_its_row_holds_no_content(
    db: Database, keyring: Keyring
) -> None:
    queue_id = _store(db, keyring, b"y" * 3000)
    with db.reading() as conn:
        loaded = queue.load_messages(conn, [queue_id], inline_size=1_000_000)[queue_id]
        sealed = queue.load_sealed(conn, queue_id, db.contents)
        row = conn.execute(messages.select().where(messages.c.queue_id == queue_id)).one()
    # Large whatever the size limit says now: the content is not in the row.
    assert loaded.large and loaded.sealed is None
    assert row.content is None and row.wrapped_key is not None
    assert sealed is not None and keyring.open(sealed, queue_id.encode()) == b"y" * 3000
    assert db.contents is not None
    assert (db.contents.path(queue_id).stat().st_mode & 0o777) == 0o600


def test_a_content_file_gone_while_its_key_is_kept_is_an_error_not_a_deletion(
    db: Database, keyring: Keyring
) -> None:
    queue_id = _store(db, keyring, b"m" * 100)
    assert db.contents is not None
    db.contents.path(queue_id).unlink()
    with db.reading() as conn, pytest.raises(ContentMissing):
        queue.load_sealed(conn, queue_id, db.contents)


def test_deleting_a_message_removes_its_file_after_the_checkpoint(
    db: Database, keyring: Keyring
) -> None:
    queue_id = _store(db, keyring, b"z" * 3000)
    assert db.contents is not None and db.contents.stored() == [queue_id]
    with db.transaction() as conn:  # as `phigate queue delete` does; then a checkpoint
        queue.delete_message(conn, queue_id, time.time())
    assert db.contents.stored() == []
    with db.reading() as conn:
        assert queue.load_sealed(conn, queue_id, db.contents) is None


def test_files_of_shredded_rows_go_and_files_no_row_names_go_once_old(
    db: Database, keyring: Keyring
) -> None:
    assert db.contents is not None
    kept = _store(db, keyring, b"k" * 100)
    shredded = _store(db, keyring, b"s" * 100)
    with db.transaction() as conn:  # shredded without a checkpoint after it
        conn.execute(
            update(messages)
            .where(messages.c.queue_id == shredded)
            .values(wrapped_key=None, content=None)
        )
    in_progress, stray = queue.new_queue_id(), queue.new_queue_id()
    db.contents.write(in_progress, (b"a store whose row is not committed yet",))
    db.contents.write(stray, (b"left by a crash an hour ago",))
    _age(db, kept, 3600)
    _age(db, stray, 3600)

    assert db.remove_contents() == 2  # the shredded one, and the old one no row names
    assert sorted(db.contents.stored()) == sorted([kept, in_progress])
    _age(db, in_progress, 3600)  # a store that crashed in progress, an hour later
    assert db.remove_contents() == 1
    assert db.contents.stored() == [kept]


def test_a_store_refused_for_its_content_file_is_not_answered_as_stored(
    tmp_path: Path,
) -> None:
    with Sink() as sink:
        gw = Phigate(tmp_path, delivery=via_sink(sink, tls="none"))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        # A file where the directory of contents belongs: no content file can be made.
        gw.db_path.with_name("phigate.db-contents").write_bytes(b"")
        with gw:
            client = gw.client("ehr1", secret)
            code, reply = _send_large(client, "b@partner.test")
            client.quit()
    assert code == 451, reply
    assert b"could not be stored" in reply
    assert not _rows(gw.db_path)


def _files(gw: Phigate) -> set[str]:
    contents = gw.db_path.with_name("phigate.db-contents")
    return {path.name for path in contents.iterdir()} if contents.exists() else set()


def _in_files(gw: Phigate) -> set[str]:
    """The queue IDs whose rows say their content is in a file."""
    return {str(queue_id) for queue_id, in_file in _rows(gw.db_path) if in_file}


def test_a_large_message_the_policy_refuses_leaves_no_file(tmp_path: Path) -> None:
    # Its content is sealed and written while it is inspected, before the policy decides
    # (the policy refuses mail to blocked.test).
    policy_dir = str(write_policy(tmp_path / "policy"))
    with Sink() as sink:
        gw = Phigate(tmp_path, delivery=via_sink(sink, tls="none"), policy_dir=policy_dir)
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            client = gw.client("ehr1", secret)
            for recipient in ("a@blocked.test", "b@blocked.test"):
                code, reply = _send_large(client, recipient)
                assert code == 550, reply
            wait_until(lambda: not _files(gw), timeout=10)
            assert not _rows(gw.db_path)
            # A message the policy lets through keeps its file until it is delivered.
            code, reply = _send_large(client, "c@partner.test")
            client.quit()
            assert code == 250, reply
            sink.wait_for(1, timeout=30)
    assert b"c@partner.test" in sink.messages[0].content


def test_a_session_lost_during_a_large_message_leaves_no_file_without_its_row(
    tmp_path: Path,
) -> None:
    # The client resets the connection right after the end of DATA, while the message is
    # inspected: the intake is cancelled (no row, and its file goes) or had committed
    # (row and file, delivered later). Never a file without its row.
    with Sink() as sink:
        sink.handler.script = lambda _rcpt: "451 4.3.0 try later"  # keeps what is queued
        gw = Phigate(tmp_path, delivery=via_sink(sink, tls="none"))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            for attempt in range(4):
                client = gw.client("ehr1", secret)
                raw = message(
                    "a@clinic.example.org", f"b{attempt}@partner.test", "scan", LARGE_BODY
                )
                client.mail("a@clinic.example.org")
                client.rcpt(f"b{attempt}@partner.test")
                client.putcmd("data")
                assert client.getreply()[0] == 354
                client.send(raw + b"\r\n.\r\n")
                # Closed with a reset, at once: no reply is read.
                client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.sock.close()
            time.sleep(1.0)  # a large message's intake takes milliseconds
            wait_until(lambda: _files(gw) == _in_files(gw), timeout=10)
            assert gw.proc is not None and gw.proc.poll() is None  # still serving


def _rows(db_path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT queue_id, content IS NULL FROM messages").fetchall()
    finally:
        conn.close()


def test_a_large_message_accepted_survives_a_kill_and_is_delivered_whole(
    tmp_path: Path,
) -> None:
    deferring = threading.Event()
    deferring.set()
    with Sink() as sink:
        sink.handler.script = lambda _rcpt: "451 4.3.0 try later" if deferring.is_set() else None
        gw = Phigate(
            tmp_path, delivery=via_sink(sink, tls="none", retry_schedule=[1.0], lease_seconds=2.0)
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        contents = gw.db_path.with_name("phigate.db-contents")
        gw.start()
        try:
            raw = message("a@clinic.example.org", "b@partner.test", "scan", LARGE_BODY)
            gw.submit(secret, "a@clinic.example.org", ["b@partner.test"], raw)
            [(queue_id, in_file)] = _rows(gw.db_path)
            assert in_file and [p.name for p in contents.iterdir()] == [queue_id]
            assert gw.json("queue", "show", queue_id)["content_stored"] is True
            # Encrypted at rest: the file holds ciphertext only.
            assert b"scanned referral" not in (contents / queue_id).read_bytes()
            gw.kill()
            deferring.clear()
            gw.start()
            sink.wait_for(1, timeout=30)
            # Removed once its shredding is on disk (the checkpoint after it).
            wait_until(lambda: not any(contents.iterdir()), timeout=10)
        finally:
            gw.stop()
    body = sink.messages[0].content.split(b"\r\n\r\n", 1)[1]
    assert body.count(b"line of a scanned referral, kept as it is\r\n") == 30_000
    assert "scanned referral" not in gw.log_text()  # no content in the logs
