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

import pytest
from harness import Phigate, Sink, message, via_sink, wait_until
from residue import residue


def _query(db_path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _sealed(db_path: Path) -> tuple[str, bytes, bytes]:
    """(queue id, wrapped key, ciphertext) of the one stored message: the ciphertext from
    its row, or for a large message from its file (gateway/store/contents.py)."""
    [(queue_id, wrapped, content)] = _query(
        db_path, "SELECT queue_id, wrapped_key, content FROM messages"
    )
    assert isinstance(queue_id, str) and isinstance(wrapped, bytes)
    if content is None:
        content = (db_path.with_name(db_path.name + "-contents") / queue_id).read_bytes()
    assert isinstance(content, bytes)
    return queue_id, wrapped, content


def _shredded(db_path: Path, queue_id: str) -> bool:
    row = _query(
        db_path,
        "SELECT wrapped_key IS NULL AND content IS NULL FROM messages WHERE queue_id=?",
        queue_id,
    )
    return bool(row and row[0][0])


# A body larger than a page, so the ciphertext fills overflow pages too; and one
# above limits.large_message_size, whose ciphertext is kept in a file of its own.
BODIES = pytest.mark.parametrize(
    "body",
    ["results attached " * 600, "scanned results attached\r\n" * 50_000],
    ids=["in its row", "in its file"],
)


def _queued_behind_a_deferring_hop(tmp_path: Path, sink: Sink, body: str) -> Phigate:
    """A running server with one message queued (and deferred once) for `sink`."""
    gw = Phigate(tmp_path, delivery=via_sink(sink, tls="none"))
    secret = gw.add_principal("ehr1", "clinic.example.org")
    gw.start()
    gw.submit(
        secret,
        "a@clinic.example.org",
        ["b@partner.test"],
        message("a@clinic.example.org", "b@partner.test", "results", body),
    )
    wait_until(lambda: gw.json("queue", "ls")[0]["attempts"] >= 1)  # deferred once
    return gw


@BODIES
def test_a_delivered_message_leaves_no_key_or_ciphertext_in_the_database_files(
    tmp_path: Path, body: str
) -> None:
    deferring = threading.Event()
    deferring.set()
    with Sink() as sink:
        sink.handler.script = lambda _rcpt: "451 4.3.0 try later" if deferring.is_set() else None
        gw = _queued_behind_a_deferring_hop(tmp_path, sink, body)
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


@BODIES
def test_queue_delete_leaves_no_key_or_ciphertext_in_the_database_files(
    tmp_path: Path, body: str
) -> None:
    with Sink() as sink:
        sink.handler.script = lambda _rcpt: "451 4.3.0 try later"
        gw = _queued_behind_a_deferring_hop(tmp_path, sink, body)
        try:
            queue_id, wrapped, content = _sealed(gw.db_path)
            gw.cli("queue", "delete", queue_id)
            assert _shredded(gw.db_path, queue_id)
            # Checked while the server still runs (and holds the WAL open).
            assert residue(gw.db_path, wrapped, content) == []
        finally:
            gw.stop()
        assert residue(gw.db_path, wrapped, content) == []
