"""End to end over real sockets: smtplib submits, phigate relays to a real SMTP sink."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from harness import Phigate, Sink, free_port, message, via_sink, wait_until


def test_submitted_bytes_arrive_with_only_trace_headers_added(tmp_path: Path) -> None:
    with Sink() as sink:
        gw = Phigate(tmp_path, delivery=via_sink(sink))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        raw = message("ehr@clinic.example.org", "dr@partner.test", "Lab results", "Potassium 4.1")
        with gw:
            refused = gw.submit(secret, "ehr@clinic.example.org", ["dr@partner.test"], raw)
            assert refused == {}
            got = sink.wait_for(1)
        assert got[0].sender == "ehr@clinic.example.org"
        assert got[0].recipients == ["dr@partner.test"]
        content = got[0].content
        assert content.endswith(raw)
        trace = content[: -len(raw)]
        assert trace.startswith(b"Received: by phigate.test (phigate) with ESMTPSA id ")
        assert trace.count(b"\r\n") == 2  # one folded Received header, nothing else
        assert b"127.0.0.1" not in trace  # client details are hidden by default


def test_queue_id_in_reply_matches_store_and_content_is_encrypted(tmp_path: Path) -> None:
    gw = Phigate(tmp_path)
    secret = gw.add_principal("ehr1", "clinic.example.org")
    raw = message("ehr@clinic.example.org", "p@x.test", "CANARY-SUBJECT-7731", "CANARY-BODY-7731")
    with gw:
        client = gw.client("ehr1", secret)
        client.mail("ehr@clinic.example.org")
        client.rcpt("p@x.test")
        code, reply = client.data(raw)
        client.quit()
        assert code == 250
        queue_id = reply.decode().rsplit(" ", 1)[1]
        info = gw.json("queue", "show", queue_id)
        assert info["sender"] == "ehr@clinic.example.org"
        assert info["principal"] == "ehr1"
    db = sqlite3.connect(gw.db_path)
    assert (
        db.execute("SELECT count(*) FROM messages WHERE queue_id=?", (queue_id,)).fetchone()[0] == 1
    )
    captured = gw.json("sandbox", "ls")
    assert captured[0]["queue_id"] == queue_id
    shown = gw.cli("sandbox", "show", str(captured[0]["id"])).stdout
    assert "CANARY-BODY-7731" in shown  # the sandbox decrypts for the admin...
    for path in Path(gw.settings["data_dir"]).glob("phigate.db*"):
        assert b"CANARY" not in path.read_bytes()  # ...but nothing is stored in clear


def test_key_rotation_keeps_stored_mail_readable_without_the_old_key(tmp_path: Path) -> None:
    gw = Phigate(tmp_path, received_header={"include_client_ip": True, "include_helo": True})
    secret = gw.add_principal("ehr1", "clinic.example.org")
    with gw:
        gw.submit(secret, "a@clinic.example.org", ["b@partner.test"])
        wait_until(lambda: len(gw.json("sandbox", "ls")) == 1)
    keys_dir = Path(gw.settings["data_dir"]) / "keys"
    old_keys = set(keys_dir.glob("mk-*.key"))
    out = gw.cli("keys", "rotate").stdout
    assert "1 data keys re-wrapped" in out
    for key in old_keys:
        gw.cli("keys", "retire", key.stem)
    assert not any(key.exists() for key in old_keys)
    capture = gw.json("sandbox", "ls")[0]
    shown = gw.cli("sandbox", "show", str(capture["id"])).stdout
    # The admin opted in to client details in the trace header.
    assert shown.startswith("Received: from ") and "([127.0.0.1])" in shown


def test_command_line_overrides_listen_and_deliver(tmp_path: Path) -> None:
    with Sink() as sink:
        gw = Phigate(tmp_path)  # configured for sandbox delivery on gw.port
        secret = gw.add_principal("ehr1", "clinic.example.org")
        override_port = free_port()
        gw.port = override_port  # the client below connects where --listen points
        gw.start(
            "--listen",
            f"127.0.0.1:{override_port}",
            "--deliver",
            f"smarthost://127.0.0.1:{sink.port}",
        )
        try:
            gw.submit(secret, "a@clinic.example.org", ["b@partner.test"])
            got = sink.wait_for(1)
        finally:
            gw.stop()
        assert got[0].recipients == ["b@partner.test"]
        assert gw.json("sandbox", "ls") == []
