"""Archive retrieval as an auditor runs it: `phigate archive search|show|request|approve|
export|requests` against a real store (SQLite, or PostgreSQL in the run on
PostgreSQL), people added with `phigate user add` (argon2id, TOTP), messages sealed under
a real archive keyring, and the export opened with openssl and read with zipfile."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
import yaml
from archive_copies import BUCKET, s3_server
from click.testing import CliRunner
from residue import residue
from smime_pki import Pki, build_pki
from sqlalchemy import select, update
from stores import cli_store

from gateway.archive import export, holds, records
from gateway.archive.access import AccessRefused
from gateway.archive.records import ArchiveEntry
from gateway.archive.storage import configured_storage
from gateway.cli import main
from gateway.config import Settings
from gateway.settings_loader import load_settings
from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.store.schema import (
    archive_requests,
    archived_messages,
    audit_events,
    users,
)

PASSWORD = "correct horse battery staple"
# In every message's subject and body: it must never leave the sealed copy but in an export.
CANARY = "CANARY-7f3a9c2e-Zebulon-Quartz-4471"
DAY = 86400.0
T0 = 1_780_000_000.0  # 2026-05-28


def _message(n: int, sender: str, recipients: tuple[str, ...]) -> bytes:
    return (
        f"From: {sender}\r\nTo: {', '.join(recipients)}\r\nSubject: {CANARY} {n}\r\n"
        f"Message-ID: <m{n}@clinic.example>\r\n\r\nLab result for {CANARY}, number {n}.\r\n"
    ).encode()


MESSAGES = [
    ("QA0001", T0, "dr.who@clinic.example", ("pat@mail.example",), "treatment", True),
    (
        "QA0002",
        T0 + DAY,
        "dr.who@clinic.example",
        ("pat@mail.example", "kin@other.example"),
        "treatment",
        True,
    ),
    ("QA0003", T0 + 2 * DAY, "news@clinic.example", ("fan@other.example",), "marketing", False),
]


@dataclass
class Archive:
    config: Path
    settings: Settings
    db: Database
    pki: Pki
    tmp: Path
    bodies: dict[str, bytes]

    def run(
        self, *args: str, password: str = PASSWORD, password_file: Path | None = None
    ) -> tuple[int, str]:
        """A command as a person runs it, the password on standard input or in a file."""
        result = CliRunner().invoke(
            main,
            [*args, "-c", str(self.config), "--password-file", str(password_file or "-")],
            input=password + "\n",
        )
        return result.exit_code, result.output

    def events(self, *names: str) -> list[tuple[str, str, str | None, str | None, str | None]]:
        with self.db.reading() as conn:
            rows = conn.execute(
                select(
                    audit_events.c.event,
                    audit_events.c.result,
                    audit_events.c.actor,
                    audit_events.c.queue_id,
                    audit_events.c.detail,
                )
                .where(audit_events.c.event.in_(names))
                .order_by(audit_events.c.id)
            ).all()
        return [tuple(r) for r in rows]


def _configure(config: Path, **extra: object) -> None:
    settings = yaml.safe_load(config.read_text())
    settings.update(extra)
    config.write_text(yaml.safe_dump(settings))


@pytest.fixture
def archive(tmp_path: Path, database_url: str) -> Iterator[Archive]:
    with cli_store(tmp_path, database_url) as (config, settings, db):
        _configure(config, reviewer={"totp_required_roles": [], "lockout_attempts": 3})
        runner = CliRunner()
        for name, role in (
            ("alice", "auditor"),
            ("bob", "admin"),
            ("carol", "auditor"),
            ("olga", "operator"),
        ):
            added = runner.invoke(
                main,
                ["user", "add", name, "--role", role, "--password-stdin", "-c", str(config)],
                input=PASSWORD + "\n",
            )
            assert added.exit_code == 0, added.output
        keyring = Keyring.create(settings.path(settings.archive.keys_dir))
        bodies: dict[str, bytes] = {}
        with db.transaction() as conn:
            for queue_id, at, sender, recipients, category, phi in MESSAGES:
                body = _message(len(bodies), sender, recipients)
                bodies[queue_id] = body
                entry = ArchiveEntry(
                    queue_id,
                    records.MESSAGE,
                    at,
                    f"<{queue_id}@clinic.example>",
                    "clinic",
                    sender,
                    recipients,
                    category,
                    phi,
                    len(body),
                    hashlib.sha256(body).hexdigest(),
                )
                records.record(conn, entry, keyring.seal(body, queue_id.encode()))
        yield Archive(config, settings, db, build_pki(tmp_path / "pki"), tmp_path, bodies)


def _opened(archive: Archive, bundle: Path) -> zipfile.ZipFile:
    """The bundle decrypted by openssl with the recipient's key, as a ZIP."""
    return zipfile.ZipFile(io.BytesIO(archive.pki.decrypt_der(bundle)))


AS_ALICE = ("--user", "alice")
REASON = ("--reason", "case 2026-117")


def test_an_auditor_searches_by_metadata_and_each_search_is_audited(archive: Archive) -> None:
    code, out = archive.run(
        "archive", "search", *AS_ALICE, *REASON, "--recipient", "pat@mail.example", "--json"
    )
    assert code == 0, out
    found = json.loads(out)
    assert [f["queue_id"] for f in found] == ["QA0002", "QA0001"]  # newest first
    assert found[0]["recipients"] == ["kin@other.example", "pat@mail.example"]
    assert found[0]["phi"] is True and found[0]["destroyed_at"] is None
    searches = {
        ("--domain", "other.example"): ["QA0003", "QA0002"],
        ("--domain", "clinic.example", "--category", "marketing"): ["QA0003"],
        ("--sender", "dr.who@clinic.example", "--since", "2026-05-29"): ["QA0002"],
        ("--sender", "dr.who@clinic.example", "--until", "2026-05-28"): ["QA0001"],
        ("--message-id", "<QA0003@clinic.example>"): ["QA0003"],
        ("--principal", "clinic", "--no-phi"): ["QA0003"],
        ("--principal", "clinic", "--limit", "1"): ["QA0003"],
    }
    for filters, expected in searches.items():
        code, out = archive.run("archive", "search", *AS_ALICE, *REASON, *filters, "--json")
        assert code == 0 and [f["queue_id"] for f in json.loads(out)] == expected, filters
    typed = archive.tmp / "password"
    typed.write_text(PASSWORD + "\n")
    code, out = archive.run(
        "archive",
        "search",
        *AS_ALICE,
        *REASON,
        "--sender",
        "dr.who@clinic.example",
        password="",
        password_file=typed,
    )
    assert code == 0 and "QA0001" in out and "kin@other.example (+1)" in out
    assert "QA0002" in out and "treatment" in out and "kept" in out
    assert CANARY not in out
    searched = archive.events("archive_search")
    assert len(searched) == 1 + len(searches) + 1
    event, result, actor, queue_id, detail = searched[0]
    assert (event, result, actor, queue_id) == ("archive_search", "ok", "cli:alice", None)
    # Filter names, the count and the reason; not the addresses searched for.
    assert detail == 'filters=recipient count=2 reason="case 2026-117"'
    assert not any("@" in (d or "") for *_, d in searched)
    # Sign-ins are counted as the pages' are.
    assert ("web_sign_in", "ok", "web:alice", None, "role=auditor") in archive.events("web_sign_in")


def test_show_gives_metadata_and_the_holds_that_cover_it(archive: Archive) -> None:
    with archive.db.transaction() as conn:
        covering = holds.Selector(recipient="pat@mail.example", since=T0 - 30 * 86400)
        holds.place(conn, "HOLD-1", "litigation", covering, "cli:root", T0)
        holds.place(conn, "HOLD-2", "other", holds.Selector(sender="x@y.example"), "cli:root", T0)
    code, out = archive.run("archive", "show", "QA0001", *AS_ALICE, *REASON)
    assert code == 0, out
    assert "dr.who@clinic.example" in out and "pat@mail.example" in out
    assert "hold #1 (HOLD-1)" in out and "HOLD-2" not in out and CANARY not in out
    code, out = archive.run("archive", "show", "QA0003", *AS_ALICE, *REASON, "--json")
    shown = json.loads(out)
    assert (
        code == 0
        and shown["holds"] == []
        and shown["sha256"] == hashlib.sha256(archive.bodies["QA0003"]).hexdigest()
    )
    code, out = archive.run("archive", "show", "NOPE", *AS_ALICE, *REASON)
    assert code == 3 and "not in the archive" in out
    assert [e[:4] for e in archive.events("archive_view")] == [
        ("archive_view", "ok", "cli:alice", "QA0001"),
        ("archive_view", "ok", "cli:alice", "QA0003"),
        ("archive_view", "refused", "cli:alice", "NOPE"),
    ]


def test_only_auditors_with_a_reason_and_the_right_password_get_in(archive: Archive) -> None:
    for person in ("olga", "bob"):  # operator; admin is kept apart from content
        code, out = archive.run("archive", "search", "--user", person, *REASON, "--domain", "x")
        assert code == 3 and "for the auditor role" in out
    refused = archive.events("archive_search")
    assert [(r, a, d) for _, r, a, _, d in refused] == [
        ("refused", "cli:olga", "why=role role=operator"),
        ("refused", "cli:bob", "why=role role=admin"),
    ]
    code, out = archive.run("archive", "search", *AS_ALICE, "--domain", "x")
    assert code == 2 and "--reason" in out
    code, out = archive.run("archive", "search", *AS_ALICE, "--reason", "  ", "--domain", "x")
    assert code == 2 and "state why with --reason" in out
    code, out = archive.run("archive", "search", *AS_ALICE, *REASON, "--category", "treatment")
    assert code == 2 and "give at least one of --sender" in out  # never a full scan
    # Wrong passwords count toward the pages' lockout (3 in a row here).
    for attempt in (1, 2):
        code, out = archive.run(
            "archive", "search", *AS_ALICE, *REASON, "--domain", "x", password="not the password"
        )
        assert code == 3 and "name or password is not right" in out
        with archive.db.reading() as conn:
            counted = conn.execute(
                select(users.c.failed_attempts).where(users.c.name == "alice")
            ).scalar_one()
        assert counted == attempt
    code, out = archive.run(
        "archive", "search", *AS_ALICE, *REASON, "--domain", "x", password="not the password"
    )
    assert code == 3 and "too many wrong attempts" in out
    code, out = archive.run("archive", "search", *AS_ALICE, *REASON, "--domain", "x")
    assert code == 3 and "locked out" in out  # even with the right password
    failed = [e for e in archive.events("web_sign_in") if e[1] in ("failed", "locked", "refused")]
    assert [(r, a, d) for _, r, a, _, d in failed] == [
        ("failed", "web:alice", "wrong password, attempt 1"),
        ("failed", "web:alice", "wrong password, attempt 2"),
        ("failed", "web:alice", "wrong password, attempt 3"),
        ("locked", "web:alice", None),
        ("refused", "web:alice", "locked"),
    ]
    code, out = archive.run("archive", "search", "--user", "nobody", *REASON, "--domain", "x")
    assert code == 3 and "name or password is not right" in out


def test_a_person_whose_role_needs_totp_gives_a_code_each_used_once(archive: Archive) -> None:
    _configure(archive.config, reviewer={"totp_required_roles": ["auditor"]})
    code, out = archive.run("archive", "search", "--user", "carol", *REASON, "--domain", "x")
    assert code == 3 and "phigate user totp enroll carol" in out
    enrolled = CliRunner().invoke(
        main, ["user", "totp", "enroll", "carol", "--json", "-c", str(archive.config)]
    )
    totp = pyotp.TOTP(json.loads(enrolled.output)["secret"])
    search = ("archive", "search", "--user", "carol", *REASON, "--domain", "x")
    right = totp.now()
    code, out = archive.run(*search, "--code", "000000" if right != "000000" else "111111")
    assert code == 3 and "name or code is not right" in out
    assert archive.run(*search, "--code", right)[0] == 0
    code, out = archive.run(*search, "--code", right)  # a code is used once
    assert code == 3 and "code is not right" in out
    # The next step's code (accepted: a clock may be 30 s off) is a new one.
    assert archive.run(*search, "--code", totp.at(time.time() + 30))[0] == 0


def test_an_export_opens_with_openssl_and_holds_the_exact_messages(archive: Archive) -> None:
    bundle = archive.tmp / "export.p7m"
    code, out = archive.run(
        "archive",
        "export",
        "QA0001",
        "QA0003",
        *AS_ALICE,
        *REASON,
        "--to",
        str(bundle),
        "--recipient-cert",
        str(archive.pki.path("good")),
    )
    assert code == 0, out
    assert "Exported 2 message(s) (request #1)" in out and CANARY not in out
    assert CANARY.encode() not in bundle.read_bytes()  # enveloped
    assert bundle.stat().st_mode & 0o077 == 0
    opened = _opened(archive, bundle)
    assert sorted(opened.namelist()) == ["QA0001.eml", "QA0003.eml", "manifest.json"]
    manifest = json.loads(opened.read("manifest.json"))
    for queue_id in ("QA0001", "QA0003"):
        data = opened.read(f"{queue_id}.eml")
        assert data == archive.bodies[queue_id]
        listed = next(m for m in manifest["messages"] if m["queue_id"] == queue_id)
        assert listed["sha256"] == hashlib.sha256(data).hexdigest()
        assert listed["size"] == len(data)
    assert manifest["exported_by"] == "alice" and manifest["reason"] == "case 2026-117"
    assert manifest["request_id"] == 1 and manifest["messages"][0]["received_at"].startswith(
        "2026-05-28T"
    )
    assert CANARY not in json.dumps(manifest)  # metadata only
    # `unzip` reads it too.
    plain = archive.tmp / "export.zip"
    plain.write_bytes(archive.pki.decrypt_der(bundle))
    tested = subprocess.run(["unzip", "-t", str(plain)], capture_output=True, text=True)
    assert tested.returncode == 0 and "No errors detected" in tested.stdout
    exported = archive.events("archive_export")
    assert len(exported) == 1
    _, result, actor, _, detail = exported[0]
    assert (result, actor) == ("ok", "cli:alice")
    assert detail is not None and detail.startswith("request=1 count=2 cert=sha256:")
    with archive.db.reading() as conn:
        request = conn.execute(select(archive_requests)).one()
    assert request.used_at is not None and json.loads(request.queue_ids) == ["QA0001", "QA0003"]
    code, out = archive.run(
        "archive",
        "export",
        "QA0001",
        *AS_ALICE,
        *REASON,
        "--to",
        str(bundle),
        "--recipient-cert",
        str(archive.pki.path("good")),
    )
    assert code == 2 and "exists already" in out


def test_an_export_refuses_unknown_destroyed_and_altered_messages(archive: Archive) -> None:
    cert = ("--recipient-cert", str(archive.pki.path("good")))
    with archive.db.transaction() as conn:
        conn.execute(
            update(archived_messages)
            .where(archived_messages.c.queue_id == "QA0002")
            .values(destroyed_at=T0 + 9 * DAY, wrapped_key=None, content=None)
        )
        conn.execute(
            update(archived_messages)
            .where(archived_messages.c.queue_id == "QA0003")
            .values(sha256="0" * 64)
        )
    cases = {
        "NOPE": "not in the archive: NOPE",
        "QA0002": "destroyed by retention",
        "QA0003": "does not match the SHA-256 recorded",
    }
    for n, (queue_id, message) in enumerate(cases.items()):
        to = archive.tmp / f"out{n}.p7m"
        code, out = archive.run(
            "archive", "export", "QA0001", queue_id, *AS_ALICE, *REASON, "--to", str(to), *cert
        )
        assert code == 3 and message in out, out
        assert not to.exists() and not list(archive.tmp.glob(".*.partial"))
    for bad in ("ec_key", "expired"):
        code, out = archive.run(
            "archive",
            "export",
            "QA0001",
            *AS_ALICE,
            *REASON,
            "--to",
            str(archive.tmp / "x.p7m"),
            "--recipient-cert",
            str(archive.pki.path(bad)),
        )
        assert code == 2 and ("no RSA key" in out or "not valid now" in out)
    refused = archive.events("archive_export")
    assert [(r, (d or "").split()[0]) for _, r, _, _, d in refused] == [
        ("refused", "why=unknown-queue-id"),
        ("refused", "why=destroyed"),
        ("refused", "why=sha256-mismatch"),
    ]


def test_the_two_person_rule(archive: Archive) -> None:
    _configure(
        archive.config,
        reviewer={"totp_required_roles": []},
        archive={"export": {"two_person_rule": True, "request_hours": 24}},
    )
    cert = ("--recipient-cert", str(archive.pki.path("good")))
    to = archive.tmp / "export.p7m"
    code, out = archive.run(
        "archive", "export", "QA0001", *AS_ALICE, *REASON, "--to", str(to), *cert
    )
    assert code == 3 and "two-person rule is on" in out
    code, out = archive.run("archive", "request", "QA0001", "QA0002", *AS_ALICE, *REASON)
    assert code == 0 and "Request #1 made for 2 message(s)" in out
    code, out = archive.run("archive", "approve", "1", *AS_ALICE)
    assert code == 3 and "another admin or auditor must approve it" in out
    export = ("archive", "export", "--request", "1", "--to", str(to), *cert)
    code, out = archive.run(*export, *AS_ALICE)
    assert code == 3 and "not approved yet" in out
    code, out = archive.run("archive", "approve", "1", "--user", "olga")
    assert code == 3 and "admin or auditor role" in out
    code, out = archive.run("archive", "approve", "1", "--user", "bob")
    assert code == 0 and "is approved" in out
    code, out = archive.run(*export, *AS_ALICE)
    assert code == 0, out
    manifest = json.loads(_opened(archive, to).read("manifest.json"))
    assert (manifest["request_id"], manifest["approved_by"]) == (1, "bob")
    code, out = archive.run(*export[:4], "--to", str(archive.tmp / "again.p7m"), *cert, *AS_ALICE)
    assert code == 3 and "was used already" in out
    # A request expires request_hours after it was made, approved or not.
    assert archive.run("archive", "request", "QA0003", *AS_ALICE, *REASON)[0] == 0
    with archive.db.transaction() as conn:
        conn.execute(
            update(archive_requests)
            .where(archive_requests.c.id == 2)
            .values(requested_at=archive_requests.c.requested_at - 25 * 3600)
        )
    code, out = archive.run("archive", "approve", "2", "--user", "carol")
    assert code == 3 and "has expired" in out
    code, out = archive.run("archive", "requests", "--user", "bob", "--json")
    listed = json.loads(out)
    assert code == 0 and [
        (r["id"], r["state"], r["requested_by"], r["approved_by"]) for r in listed
    ] == [(2, "expired", "alice", None), (1, "used", "alice", "bob")]
    code, out = archive.run("archive", "requests", "--user", "olga")
    assert code == 3 and "archive requests is for the admin or auditor role" in out
    assert [e[1:3] for e in archive.events("archive_requests")] == [
        ("ok", "cli:bob"),
        ("refused", "cli:olga"),
    ]
    assert [
        (e, r, a, (d or "").split()[0])
        for e, r, a, _, d in archive.events("archive_request", "archive_approve", "archive_export")
    ] == [
        ("archive_export", "refused", "cli:alice", "why=two-person-rule"),
        ("archive_request", "ok", "cli:alice", "request=1"),
        ("archive_approve", "refused", "cli:alice", "why=same-person"),
        ("archive_export", "refused", "cli:alice", "why=not-approved"),
        ("archive_approve", "refused", "cli:olga", "why=role"),
        ("archive_approve", "ok", "cli:bob", "request=1"),
        ("archive_export", "ok", "cli:alice", "request=1"),
        ("archive_export", "refused", "cli:alice", "why=used"),
        ("archive_request", "ok", "cli:alice", "request=2"),
        ("archive_approve", "refused", "cli:carol", "why=expired"),
    ]


def test_no_content_outside_the_sealed_copy_and_the_export(
    archive: Archive, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outputs = []
    for args in (
        ("archive", "search", *AS_ALICE, *REASON, "--domain", "mail.example", "--json"),
        ("archive", "show", "QA0001", *AS_ALICE, *REASON, "--json"),
        (
            "archive",
            "export",
            "QA0001",
            "QA0002",
            *AS_ALICE,
            *REASON,
            "--to",
            str(archive.tmp / "e.p7m"),
            "--recipient-cert",
            str(archive.pki.path("good")),
        ),
        ("archive", "requests", "--user", "carol", "--json"),
    ):
        code, out = archive.run(*args)
        assert code == 0, out
        outputs.append(out)
    assert not any(CANARY in out for out in outputs) and CANARY not in caplog.text
    with archive.db.reading() as conn:
        trail = conn.execute(select(audit_events)).all()
        requested = conn.execute(select(archive_requests)).all()
    assert trail and CANARY not in repr(trail) and CANARY not in repr(requested)
    assert CANARY.encode() not in (archive.tmp / "e.p7m").read_bytes()
    if archive.settings.database_url.startswith("sqlite:///"):
        db_file = Path(archive.settings.database_url.removeprefix("sqlite:///"))
        assert residue(db_file, CANARY.encode()) == []


def test_content_in_an_object_store_is_fetched_checked_and_exported(archive: Archive) -> None:
    """With archive.storage kind s3 (a real S3-compatible server on loopback) the
    export fetches the ciphertext from the bucket, checks it against the recorded
    hash, and refuses a tampered object."""
    body = _message(9, "dr.who@clinic.example", ("pat@mail.example",))
    entry = ArchiveEntry(
        "QS0009",
        records.MESSAGE,
        T0,
        None,
        "clinic",
        "dr.who@clinic.example",
        ("pat@mail.example",),
        "treatment",
        True,
        len(body),
        hashlib.sha256(body).hexdigest(),
    )
    with s3_server(archive.tmp) as s3:
        _configure(archive.config, archive={"enabled": True, "storage": s3.settings()})
        storage = configured_storage(load_settings(archive.config))
        keyring = Keyring(archive.settings.path(archive.settings.archive.keys_dir))
        sealed = keyring.seal(body, b"QS0009")
        object_key = storage.put("QS0009", sealed.ciphertext)
        with archive.db.transaction() as conn:
            records.record(conn, entry, sealed, storage="s3", object_key=object_key)
        out_file = archive.tmp / "s3.p7m"
        code, out = archive.run(
            "archive",
            "export",
            "QS0009",
            *AS_ALICE,
            *REASON,
            "--to",
            str(out_file),
            "--recipient-cert",
            str(archive.pki.path("good")),
        )
        assert code == 0, out
        assert _opened(archive, out_file).read("QS0009.eml") == body
        s3.client().put_object(
            Bucket=BUCKET,
            Key=object_key,
            Body=sealed.ciphertext[:-1] + bytes([sealed.ciphertext[-1] ^ 1]),
        )
        with archive.db.reading() as conn:
            (found,) = export.exportable(conn, ["QS0009"])
            with pytest.raises(AccessRefused, match="cannot be opened"):
                export.content(conn, keyring, storage, found)
