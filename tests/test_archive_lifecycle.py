"""An archived message's whole life, as an organisation runs it: accepted over SMTP,
archived, held, exported by an auditor, destroyed when due, the held one only once
its hold is released; and at every step no canary from the messages anywhere in
clear (database and WAL files, tables, logs, command output, the export's manifest).
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import zipfile
from pathlib import Path

from harness import PHIGATE, Phigate, Sink, message, via_sink, wait_until
from residue import residue
from smime_pki import build_pki

CANARY_SUBJECT = "Ortolan lifecycle canary 6047"
CANARY_BODY = "Patient: Zinnia Quackenbush\r\nDOB: 02/29/1964   MRN: 58306174\r\n"
CANARIES = ("Ortolan", "Zinnia Quackenbush", "58306174")
SENDER = "records@clinic.example.org"
PASSWORD = "lifecycle auditor passphrase"
RULES = """\
version: 1
rules:
  - name: phi-short
    match: {phi: true}
    keep: 1d
default:
  keep: 6y
"""
DAY = 86400.0


def _rows(db_path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _age(db_path: Path, days: float) -> None:
    """Make every archived message `days` older, as the calendar would."""
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("UPDATE archived_messages SET received_at = received_at - ?", (days * DAY,))
        conn.commit()
    finally:
        conn.close()


def _sweep(gw: Phigate, *texts: str) -> None:
    """No canary in the raw database files, any table, the log or the given texts."""
    raw = b"".join(
        path.read_bytes()
        for path in (gw.db_path, gw.db_path.with_name(gw.db_path.name + "-wal"))
        if path.exists()
    )
    tables = [
        row[0] for row in _rows(gw.db_path, "SELECT name FROM sqlite_master WHERE type='table'")
    ]
    dumped = repr([_rows(gw.db_path, f'SELECT * FROM "{table}"') for table in tables])
    for canary in CANARIES:
        assert canary.encode() not in raw, canary
        assert canary not in dumped, canary
        assert canary not in gw.log_text(), canary
        for text in texts:
            assert canary not in text, canary


def _as_auditor(gw: Phigate, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PHIGATE, *args, "--user", "alice", "--password-file", "-", "-c", str(gw.config)],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_archived_held_exported_and_destroyed_with_no_canary_anywhere(tmp_path: Path) -> None:
    rules = tmp_path / "retention.yaml"
    rules.write_text(RULES)
    pki = build_pki(tmp_path / "pki")
    with Sink() as sink:
        gw = Phigate(
            tmp_path,
            delivery=via_sink(sink, tls="none"),
            archive={"enabled": True, "retention": {"rules_file": str(rules)}},
            reviewer={"totp_required_roles": []},
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        subprocess.run(
            [
                *PHIGATE,
                "user",
                "add",
                "alice",
                "--role",
                "auditor",
                "--password-stdin",
                "-c",
                str(gw.config),
            ],
            input=f"{PASSWORD}\n{PASSWORD}\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        with gw:
            for n in (1, 2):
                body = message(
                    SENDER,
                    "dr@partner.test",
                    CANARY_SUBJECT,
                    CANARY_BODY,
                    message_id=f"<life{n}@x>",
                )
                assert gw.submit(secret, SENDER, ["dr@partner.test"], body) == {}
            sink.wait_for(2)
            wait_until(lambda: len(_rows(gw.db_path, "SELECT 1 FROM archived_messages")) == 2)
        (first, second) = [
            str(row[0])
            for row in _rows(
                gw.db_path, "SELECT queue_id FROM archived_messages ORDER BY message_id"
            )
        ]
        reason = ("--reason", "matter 2026-44")
        outputs: list[str] = []

        # A hold on the second message, by queue id.
        held = gw.cli(
            "hold", "add", "--case", "M-44", "--reason", "litigation", "--queue-id", second
        )
        outputs.append(held.stdout + held.stderr)

        # The auditor finds and exports the first: the bundle opens with openssl, holds the
        # exact archived bytes, and its manifest records their hash but no content.
        found = _as_auditor(gw, "archive", "search", "--sender", SENDER, *reason, "--json")
        assert found.returncode == 0, found.stderr
        assert {m["queue_id"] for m in json.loads(found.stdout)} == {first, second}
        bundle = tmp_path / "export.p7m"
        exported = _as_auditor(
            gw,
            "archive",
            "export",
            first,
            "--to",
            str(bundle),
            "--recipient-cert",
            str(pki.path("good")),
            *reason,
        )
        assert exported.returncode == 0, exported.stderr
        outputs += [found.stdout + found.stderr, exported.stdout + exported.stderr]
        opened = pki.decrypt_der(bundle)
        with zipfile.ZipFile(io.BytesIO(opened)) as archive_zip:
            manifest = archive_zip.read("manifest.json").decode()
            eml = archive_zip.read(f"{first}.eml")
        assert CANARY_SUBJECT.encode() in eml  # the content is there, inside the envelope
        assert CANARY_BODY.encode() not in bundle.read_bytes()
        outputs.append(manifest)

        # A day and a half later the PHI rule makes both due: the held one survives.
        _age(gw.db_path, 1.5)
        run = gw.json("retention", "run")
        assert run["destroyed_by_rule"] == {"phi-short": 1} and run["held"] == 1, run
        ciphertexts = _rows(gw.db_path, "SELECT queue_id, content FROM archived_messages")
        kept = {str(q): bytes(c) for q, c in ciphertexts if c is not None}
        assert set(kept) == {second}

        # Released, the next run destroys it too; both have destruction records.
        released = gw.cli("hold", "release", "1", "--reason", "matter closed")
        outputs.append(released.stdout + released.stderr)
        assert gw.json("retention", "run")["destroyed_by_rule"] == {"phi-short": 1}
        assert _rows(
            gw.db_path,
            "SELECT count(*) FROM archived_messages WHERE wrapped_key IS NULL AND content IS NULL"
            " AND destroyed_at IS NOT NULL",
        ) == [(2,)]
        recorded = gw.cli("retention", "records", "--json")
        destroyed = [json.loads(line) for line in recorded.stdout.splitlines()]
        assert sorted(q for r in destroyed for q in r["queue_ids"]) == sorted([first, second])
        outputs.append(recorded.stdout)
        assert residue(gw.db_path, kept[second]) == []
        events = {str(row[0]) for row in _rows(gw.db_path, "SELECT event FROM audit_events")}
        assert {
            "archive_search",
            "archive_export",
            "legal_hold_placed",
            "legal_hold_released",
        } <= events
        _sweep(gw, *outputs)
        verified = gw.cli("audit", "verify")
        assert verified.returncode == 0
