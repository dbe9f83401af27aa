"""bench/archive_fill.py: the entries the archive's search and retention benchmarks start from."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.archive.records import ArchiveEntry, entries
from gateway.store.database import Database

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import archive_fill  # bench/archive_fill.py


def _all(db_url: str) -> list[ArchiveEntry]:
    db = Database(db_url)
    try:
        with db.reading() as conn:
            ids = [r[0] for r in conn.exec_driver_sql("SELECT queue_id FROM archived_messages")]
            found = entries(conn, ids)
            indexes = conn.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                "AND name LIKE 'ix_archived_%'"
            ).scalar()
    finally:
        db.close()
    assert indexes == 8  # built again after the inserts
    return found


def test_the_same_seed_fills_the_same_entries_readable_as_archived_ones(tmp_path: Path) -> None:
    first, second = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    archive_fill.fill(first, 2000, seed=3)
    archive_fill.fill(second, 2000, seed=3)
    filled = _all(first)
    assert len(filled) == 2000

    def drawn(e: ArchiveEntry) -> tuple[object, ...]:  # the queue id and time follow the clock
        return e.sender, e.recipients, e.category, e.phi, e.size, e.kind

    assert list(map(drawn, filled)) == list(map(drawn, _all(second)))
    assert all(1 <= len(e.recipients) <= 3 for e in filled)
    assert {e.category for e in filled} >= {"treatment", "operations", "payment"}
    assert len({e.sender for e in filled}) > 100
