"""Client-chosen header text never reaches the database, audit trail, DSNs or log in clear.

A sending system chooses the Message-ID and the purpose header. A Message-ID
that names a patient is kept only as a keyed hash; a purpose header that
names no configured purpose is refused without being kept. Checked with
canary values against the raw database files, the audit rows, a DSN that
went out and the server log.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import re
import smtplib
import sqlite3
from pathlib import Path

from harness import Phigate, Sink, message, via_sink, wait_until

SENDER = "ehr@clinic.example.org"
CANARIES = ("Quimby", "512-34-6789", "1958-04-12")
PHI_ID = f"<Zebulon.{CANARIES[0]}.DOB.{CANARIES[2]}.SSN.{CANARIES[1]}@ehr.clinic.example.org>"
PLAIN_ID = "<20261204.a1b2c3@ehr.clinic.example.org>"
HASHED = re.compile(r"<hmac-sha256\.[0-9a-f]{64}@redacted\.invalid>")


def stored_text(gw: Phigate) -> bytes:
    """Every byte phigate keeps in its database (main file and write-ahead log)."""
    data_dir = gw.db_path.parent
    return b"".join(p.read_bytes() for p in data_dir.glob("phigate.db*"))


def audit_details(gw: Phigate) -> list[str]:
    with contextlib.closing(sqlite3.connect(f"{gw.db_path.as_uri()}?mode=ro", uri=True)) as db:
        return [str(row[0]) for row in db.execute("SELECT detail FROM audit_events")]


def test_message_id_naming_a_patient_is_kept_only_as_a_keyed_hash(tmp_path: Path) -> None:
    with Sink() as sink:
        sink.handler.script = lambda rcpt: "550 5.1.1 no such user" if "gone@" in rcpt else None
        gw = Phigate(tmp_path, delivery=via_sink(sink))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        phi = message(SENDER, "gone@partner.test", "s", "b", message_id=PHI_ID)
        plain = message(SENDER, "ok@partner.test", "s", "b", message_id=PLAIN_ID)
        with gw:
            with gw.client("ehr1", secret) as client:
                client.sendmail(SENDER, ["gone@partner.test"], phi)
                client.sendmail(SENDER, ["ok@partner.test"], plain)
            got = sink.wait_for(2)  # the plain message, and the DSN of the other
            wait_until(lambda: gw.json("queue", "ls") == [])
            ids = {r["queue_id"] for r in gw.json("queue", "ls", "--all") if r["sender"]}
            shown = {gw.json("queue", "show", q)["message_id"] for q in ids}
        [dsn] = [m for m in got if m.sender == ""]
        in_reply_to = email.message_from_bytes(dsn.content, policy=email.policy.default)[
            "In-Reply-To"
        ]
        assert HASHED.fullmatch(str(in_reply_to)), in_reply_to
        hashed = str(in_reply_to)
        # The admin sees the plain id as sent, and the hash in place of the other.
        assert shown == {PLAIN_ID, hashed}
        assert f"message-id={hashed}" in audit_details(gw)
        assert f"message-id={PLAIN_ID}" in audit_details(gw)
        for canary in CANARIES:
            assert canary.encode() not in stored_text(gw), canary
            assert canary.encode() not in dsn.content, canary
            assert not any(canary in detail for detail in audit_details(gw)), canary
            assert canary not in gw.log_text(), canary
        key = Path(gw.settings["data_dir"]) / "keys" / "header-values.key"
        assert key.stat().st_mode & 0o777 == 0o600
        assert key.read_bytes() not in stored_text(gw)


def test_unknown_purpose_header_is_refused_and_never_kept(tmp_path: Path) -> None:
    gw = Phigate(tmp_path, consent={"purposes": {"flu-clinic": {"description": "Flu clinic"}}})
    secret = gw.add_principal("crm", "clinic.example.org")
    gw.cli("consent", "grant", "pat@home.example", "--purpose", "marketing", "--source", "ehr")
    purpose = f"{CANARIES[0]}-{CANARIES[1]}"
    head = f"X-Phigate-Category: marketing\r\nX-Phigate-Purpose: {purpose}\r\n".encode()
    with gw:
        try:
            gw.submit(
                secret, SENDER, ["pat@home.example"], head + message(SENDER, "pat@home.example",
                "Flu clinic", "Walk in."), user="crm"
            )  # fmt: skip
        except smtplib.SMTPDataError as exc:
            refused = exc
        else:
            raise AssertionError("an unknown purpose was accepted")
    assert refused.smtp_code == 550
    reply = refused.smtp_error.decode()
    assert reply.startswith("5.7.1 X-Phigate-Purpose names a marketing purpose that is not")
    assert "configured: flu-clinic" in reply
    for canary in CANARIES[:2]:
        assert canary not in reply
        assert canary.lower().encode() not in stored_text(gw), canary
        assert not any(canary.lower() in detail.lower() for detail in audit_details(gw))
        assert canary.lower() not in gw.log_text().lower(), canary
