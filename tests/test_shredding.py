"""Crypto-shredding leaves no copy of a message's wrapped key or ciphertext on disk.

SQLite keeps old page images in the WAL and deleted cells on free pages: a
message shredded by setting its columns to NULL could still be decrypted
from `phigate.db-wal` with the master key. These tests read the sealed bytes
from the database while the message is queued, shred it the way phigate
does (delivery, `phigate queue delete`), then search the raw files.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from harness import Phigate, Sink, message, via_sink, wait_until
from residue import residue


def _query(db_path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _sealed(db_path: Path) -> tuple[str, bytes, bytes]:
    """(queue id, wrapped key, ciphertext) of the one stored message."""
    [(queue_id, wrapped, content)] = _query(
        db_path, "SELECT queue_id, wrapped_key, content FROM messages"
    )
    assert isinstance(queue_id, str)
    assert isinstance(wrapped, bytes) and isinstance(content, bytes)
    return queue_id, wrapped, content


def _shredded(db_path: Path, queue_id: str) -> bool:
    row = _query(
        db_path,
        "SELECT wrapped_key IS NULL AND content IS NULL FROM messages WHERE queue_id=?",
        queue_id,
    )
    return bool(row and row[0][0])


def _queued_behind_a_deferring_hop(tmp_path: Path, sink: Sink) -> Phigate:
    """A running server with one message queued (and deferred once) for `sink`."""
    gw = Phigate(tmp_path, delivery=via_sink(sink, tls="none"))
    secret = gw.add_principal("ehr1", "clinic.example.org")
    gw.start()
    # A body larger than a page, so the ciphertext fills overflow pages too.
    body = "results attached " * 600
    gw.submit(
        secret,
        "a@clinic.example.org",
        ["b@partner.test"],
        message("a@clinic.example.org", "b@partner.test", "results", body),
    )
    wait_until(lambda: gw.json("queue", "ls")[0]["attempts"] >= 1)  # deferred once
    return gw


def test_a_delivered_message_leaves_no_key_or_ciphertext_in_the_database_files(
    tmp_path: Path,
) -> None:
    deferring = threading.Event()
    deferring.set()
    with Sink() as sink:
        sink.handler.script = lambda _rcpt: "451 4.3.0 try later" if deferring.is_set() else None
        gw = _queued_behind_a_deferring_hop(tmp_path, sink)
        try:
            queue_id, wrapped, content = _sealed(gw.db_path)
            assert residue(gw.db_path, wrapped, content)  # the search does find them
            deferring.clear()
            sink.wait_for(1)
            wait_until(lambda: _shredded(gw.db_path, queue_id))
            wait_until(lambda: not residue(gw.db_path, wrapped, content), timeout=5)
        finally:
            gw.stop()
        assert not residue(gw.db_path, wrapped, content)


def test_queue_delete_leaves_no_key_or_ciphertext_in_the_database_files(tmp_path: Path) -> None:
    with Sink() as sink:
        sink.handler.script = lambda _rcpt: "451 4.3.0 try later"
        gw = _queued_behind_a_deferring_hop(tmp_path, sink)
        try:
            queue_id, wrapped, content = _sealed(gw.db_path)
            gw.cli("queue", "delete", queue_id)
            assert _shredded(gw.db_path, queue_id)
            # Checked while the server still runs (and holds the WAL open).
            assert residue(gw.db_path, wrapped, content) == []
        finally:
            gw.stop()
        assert residue(gw.db_path, wrapped, content) == []
