"""The server's scheduled retention run: due content destroyed by one of its processes."""

from __future__ import annotations

import json
import time
from pathlib import Path

from archived import DAY, YEAR, archive, write_rules
from harness import Phigate, wait_until
from residue import residue
from sqlalchemy import select

from gateway import datadir
from gateway.settings_loader import load_settings
from gateway.store.keyring import Keyring
from gateway.store.schema import archived_messages, destruction_records

CANARY = b"CANARY-51c0de77-scheduled-retention John Doe DOB 1961-04-01"


def test_the_server_destroys_due_content_in_one_process(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    gw = Phigate(tmp_path, processes=2, archive={"retention": {"rules_file": str(rules)}})
    settings = load_settings(gw.config)
    keyring = Keyring.create(tmp_path / "archive-keys")
    db = datadir.open_database(settings)
    try:
        now = time.time()
        with db.transaction() as conn:
            sealed = archive(conn, keyring, "OLD1", now - 7 * YEAR, content=CANARY)
            archive(conn, keyring, "OLD2", now - 7 * YEAR - DAY, principal="billing")
            archive(conn, keyring, "NEW1", now - DAY, content=CANARY)
        gw.cli("hold", "add", "--case", "C-9", "--reason", "audit", "--principal", "billing")
        with gw:

            def destroyed() -> list[str]:
                with db.reading() as conn:
                    query = select(archived_messages.c.queue_id).where(
                        archived_messages.c.destroyed_at.is_not(None)
                    )
                    return list(conn.execute(query).scalars())

            wait_until(lambda: destroyed() == ["OLD1"], timeout=60)
            wait_until(lambda: '"event":"retention_run"' in gw.log_text(), timeout=10)
        with db.reading() as conn:
            records = list(conn.execute(select(destruction_records)))
        assert len(records) == 1
        assert records[0].actor == "server:phigate.test"
        assert json.loads(records[0].queue_ids) == ["OLD1"]
        runs = [e for e in gw.log_events() if e.get("event") == "retention_run"]
        assert len(runs) == 1 and runs[0]["destroyed"] == 1 and runs[0]["held"] == 1
        db.checkpoint()
        assert residue(Path(gw.db_path), sealed) == []
        assert "CANARY" not in gw.log_text() and "John Doe" not in gw.log_text()
        held = gw.json("retention", "explain", "OLD2")
        assert held["held"] is True and held["destroyed_at"] is None
    finally:
        db.close()
