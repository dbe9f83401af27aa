"""No content outside the encrypted store: canaries in subject, body, attachment
name and contents must not appear in the database, logs, audit trail or CLI output."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from harness import Phigate, Sink, message, via_sink, wait_until

SUBJECT = "CANARY-SUBJ-93xq Jane Doe MRN 4411"
BODY = "CANARY-BODY-93xq diagnosis E11.9"
ATTACHMENT = "CANARY-ATT-93xq"
CANARY_MARK = b"93xq"


def test_no_canary_outside_encrypted_content(tmp_path: Path) -> None:
    with Sink() as sink:
        sink.handler.script = lambda rcpt: "550 5.1.1 unknown" if rcpt.startswith("gone@") else None
        gw = Phigate(tmp_path, delivery=via_sink(sink))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        raw = message(
            "Dr Who <ehr@clinic.example.org>",
            "p@partner.test",
            SUBJECT,
            BODY,
            attachment=ATTACHMENT,
        )
        with gw:
            client = gw.client("ehr1", secret)
            client.sendmail("ehr@clinic.example.org", ["ok@partner.test", "gone@partner.test"], raw)
            # a refused message with a canary (bare LF) must not leak either
            client.mail("ehr@clinic.example.org")
            client.rcpt("ok@partner.test")
            client.putcmd("DATA")
            client.getreply()
            client.send(b"Subject: " + SUBJECT.encode() + b"\n\n" + BODY.encode() + b"\r\n.\r\n")
            code, _ = client.getreply()
            assert code == 554
            client.quit()
            sink.wait_for(2)  # delivery to ok@ and the DSN
            wait_until(lambda: gw.json("queue", "ls") == [])
            outputs = [
                gw.cli("queue", "ls", "--all", "--json").stdout,
                gw.cli("sandbox", "ls", "--json").stdout,
            ]
            queue_ids = {row["queue_id"] for row in gw.json("queue", "ls", "--all")}
            outputs += [gw.cli("queue", "show", q, "--json").stdout for q in queue_ids]
        dsn = next(m for m in sink.messages if m.sender == "")
        assert CANARY_MARK not in dsn.content
        for path in Path(gw.settings["data_dir"]).rglob("*"):
            if path.is_file():
                assert CANARY_MARK not in path.read_bytes(), path
        assert "93xq" not in gw.log_text()
        for out in outputs:
            assert "93xq" not in out
        db = sqlite3.connect(gw.db_path)
        rows = db.execute("SELECT * FROM audit_events").fetchall()
        assert len(rows) >= 5
        assert "93xq" not in repr(rows)
        # the content that was delivered did carry the canaries: the test can see them
        delivered = next(m for m in sink.messages if m.sender)
        assert CANARY_MARK in delivered.content
