"""Audit search and timelines on a real store (SQLite, and PostgreSQL when named):
each filter, paging, counts, `phigate audit search/show`, who made each admin
change, the search keys kept honest by `audit verify`, and the migration that
fills them in for events written before them. Output is metadata only."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text
from stores import CliStore, cli_store

import gateway.store as store_module
from gateway.audit import indexer, search, trail
from gateway.audit.search import Filters
from gateway.audit.trail import AuditEvent
from gateway.audit.verify import verify
from gateway.cli.common import cli_actor
from gateway.delivery.client import RecipientResult, TlsEvidence
from gateway.delivery.outcomes import audit_detail
from gateway.store import queue
from gateway.store.audit_key import AuditKey
from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.store.queue import NewJob, NewMessage

CANARY = "canary-audit-search-7w3 Diagnosis for Pat Example"
T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z
DAY = 86400.0
Q1, Q2, DSN_Q = "1AAAAAAAAAAAAAAAAAAA1", "2BBBBBBBBBBBBBBBBBBB2", "9DDDDDDDDDDDDDDDDDDD9"


def _policy(
    q: str, rcpt: str, rule: str, version: str, ts: float, phi: str = "yes", action: str = "deliver"
) -> AuditEvent:
    detail = f"policy={version} category=clinical rule={rule} consent=not-needed via=tls phi={phi}"
    return AuditEvent(
        "policy", action, queue_id=q, principal="ehr1", client_ip="192.0.2.7",
        sender="dr@clinic.example", recipients=(rcpt,), detail=detail, ts=ts,
    )  # fmt: skip


def _attempt(
    q: str, rcpt: str, event: str, mode: str, verified: str | None, ts: float
) -> AuditEvent:
    tls = (
        TlsEvidence("TLSv1.3", "TLS_AES_256_GCM_SHA384", "ab" * 32, verified) if verified else None
    )
    code, status = {
        "delivered": (250, "2.0.0"),
        "deferred": (451, "4.4.1"),
        "bounced": (550, "5.1.1"),
    }[event]
    # The remote reply is the other side's text: a mode= in it is not a search key.
    result = RecipientResult(
        rcpt, code, status, "ok mode=fake verify=pin", "mx.partner.example", mode, tls
    )
    return AuditEvent(
        event, status, queue_id=q, principal="ehr1", sender="dr@clinic.example",
        recipients=(rcpt,), code=code, detail=audit_detail(result), ts=ts,
    )  # fmt: skip


def _story() -> list[AuditEvent]:
    """Two messages' lives and a few admin changes, a day apart."""
    return [
        AuditEvent("auth", "ok", principal="ehr1", client_ip="192.0.2.7", code=235, ts=T0),
        _policy(Q1, "Pat@Gmail.com", "phi-external", "7", T0 + 1),
        _policy(Q1, "kim@partner.example", "defaults", "7", T0 + 1),
        AuditEvent(
            "accepted",
            "queued",
            queue_id=Q1,
            principal="ehr1",
            client_ip="192.0.2.7",
            sender="dr@clinic.example",
            recipients=("pat@gmail.com", "kim@partner.example"),
            size=2048,
            code=250,
            detail="message-id=<a1@clinic.example>",
            ts=T0 + 1,
        ),
        _attempt(Q1, "kim@partner.example", "delivered", "tls", "dane-ee", T0 + 5),
        _attempt(Q1, "pat@gmail.com", "deferred", "tls", None, T0 + 6),
        _attempt(Q1, "pat@gmail.com", "bounced", "tls", "no", T0 + 60),
        AuditEvent(
            "dsn",
            "queued",
            queue_id=DSN_Q,
            sender="",
            recipients=("dr@clinic.example",),
            size=900,
            detail=f"for {Q1}",
            ts=T0 + 60,
        ),
        _policy(Q2, "lee@partner.example", "hold-large", "8", T0 + DAY, phi="no", action="hold"),
        AuditEvent(
            "accepted",
            "queued",
            queue_id=Q2,
            principal="crm",
            sender="news@clinic.example",
            recipients=("lee@partner.example",),
            size=512,
            code=250,
            detail="message-id=<b2@clinic.example>",
            ts=T0 + DAY,
        ),
        AuditEvent(
            "released",
            "admin",
            queue_id=Q2,
            recipients=("lee@partner.example",),
            ts=T0 + DAY + 10,
            actor="cli:alice",
        ),
        _attempt(Q2, "lee@partner.example", "delivered", "smime", "pkix", T0 + DAY + 20),
        AuditEvent("principal", "disabled", principal="crm", ts=T0 + 2 * DAY, actor="cli:bob"),
    ]


@pytest.fixture
def filled(db: Database) -> Database:
    with db.transaction() as conn:
        trail.append(conn, _story())
    indexer.catch_up(db)
    return db


def _found(db: Database, **given: Any) -> list[tuple[str, str | None]]:
    with db.reading() as conn:
        page = search.search(conn, Filters(**given), limit=1000)
    assert page.next_after is None
    return [(e.event, e.queue_id) for e in page.events]


def test_each_filter_finds_exactly_its_events(filled: Database) -> None:
    assert _found(filled, since=T0 + DAY, until=T0 + 2 * DAY) == [
        ("policy", Q2), ("accepted", Q2), ("released", Q2), ("delivered", Q2),
    ]  # fmt: skip
    assert _found(filled, queue_id=Q1) == [
        ("policy", Q1), ("policy", Q1), ("accepted", Q1), ("delivered", Q1),
        ("deferred", Q1), ("bounced", Q1), ("dsn", DSN_Q),  # the DSN about it too
    ]  # fmt: skip
    assert _found(filled, message_id="<b2@clinic.example>") == _found(filled, queue_id=Q2)
    assert _found(filled, message_id="<nope@clinic.example>") == []
    assert _found(filled, principal="crm") == [("accepted", Q2), ("principal", None)]
    assert _found(filled, sender="news@clinic.example") == [("accepted", Q2)]
    # Recipients in any case; the accepted event lists several.
    assert _found(filled, recipient="PAT@gmail.com") == [
        ("policy", Q1), ("accepted", Q1), ("deferred", Q1), ("bounced", Q1),
    ]  # fmt: skip
    assert _found(filled, recipient_domain="Partner.Example", events=("delivered",)) == [
        ("delivered", Q1), ("delivered", Q2),
    ]  # fmt: skip
    assert _found(filled, events=("dsn", "released")) == [("dsn", DSN_Q), ("released", Q2)]
    assert _found(filled, rule="phi-external") == [("policy", Q1)]
    assert _found(filled, rule="defaults") == [("policy", Q1)]
    assert _found(filled, policy_version="8") == [("policy", Q2)]
    assert _found(filled, mode="smime") == [("delivered", Q2)]
    assert _found(filled, mode="fake") == []  # the remote reply's words are not search keys
    assert _found(filled, tls="dane-ee") == [("delivered", Q1)]
    assert _found(filled, tls="pkix") == [("delivered", Q2)]
    assert _found(filled, tls="unverified") == [("bounced", Q1)]
    assert _found(filled, tls="none") == [("deferred", Q1)]
    assert _found(filled, tls="pin") == []
    assert _found(filled, result="hold") == [("policy", Q2)]
    assert _found(filled, actor="cli:alice") == [("released", Q2)]
    # Filters combine: all must hold.
    assert _found(filled, queue_id=Q1, recipient="pat@gmail.com", events=("bounced",)) == [
        ("bounced", Q1)
    ]


def test_paging_visits_every_match_once_in_id_order(filled: Database) -> None:
    seen: list[int] = []
    after = 0
    with filled.reading() as conn:
        while True:
            page = search.search(conn, Filters(since=T0), limit=3, after=after)
            seen += [e.id for e in page.events]
            if page.next_after is None:
                break
            after = page.next_after
        everything = search.search(conn, Filters(), limit=100).events
    assert seen == [e.id for e in everything] and len(seen) == len(_story())
    with pytest.raises(search.FilterError, match="limit must be 1 to"), filled.reading() as conn:
        search.search(conn, Filters(), limit=0)


def test_summary_counts_matches_by_kind(filled: Database) -> None:
    with filled.reading() as conn:
        counted = search.summary(conn, Filters(until=T0 + DAY))
    assert counted.total == 8
    assert counted.by_event == {
        "policy": 2, "accepted": 1, "auth": 1, "bounced": 1, "deferred": 1, "delivered": 1,
        "dsn": 1,
    }  # fmt: skip
    assert next(iter(counted.by_event)) == "policy"  # most frequent first


def test_verify_passes_and_finds_an_edited_search_key(filled: Database) -> None:
    key = filled.audit_key
    assert key is not None
    with filled.reading() as conn:
        assert verify(conn, key).ok
    # The search keys are outside the hash: verify recomputes them.
    with filled.transaction() as conn:
        conn.execute(text("UPDATE audit_events SET rule = 'harmless' WHERE rule = 'phi-external'"))
    with filled.reading() as conn:
        report = verify(conn, key)
    [problem] = report.problems
    assert "search keys" in problem.reason and problem.event_id == 2
    # So are the recipient index's rows: one taken away hides the event from a search.
    with filled.transaction() as conn:
        conn.execute(text("DELETE FROM audit_recipients WHERE recipient = 'pat@gmail.com'"))
        conn.execute(text("UPDATE audit_recipients SET domain = 'x.example' WHERE event_id = 5"))
    with filled.reading() as conn:
        report = verify(conn, key)
    assert [p.event_id for p in report.problems] == [2, 4, 5, 6, 7]
    assert all("audit_recipients" in p.reason for p in report.problems)


def test_parse_when_reads_dates_and_times() -> None:
    assert search.parse_when("2026-05-28") == 1779926400.0
    assert search.parse_when("2026-05-28", end=True) == 1779926400.0 + DAY
    assert search.parse_when("2026-05-28T01:00") == 1779926400.0 + 3600
    assert search.parse_when("2026-05-28T02:00+01:00") == 1779926400.0 + 3600
    with pytest.raises(search.FilterError, match="not a date or time"):
        search.parse_when("yesterday")


# --- the command line -----------------------------------------------------------------


class Gate(CliStore):
    """A data dir and store as `phigate` opens them, and the config the CLI reads."""


@pytest.fixture
def gate(tmp_path: Path, database_url: str) -> Iterator[Gate]:
    with cli_store(tmp_path, database_url) as (config, settings, db):
        yield Gate(config, db, Keyring(settings.path(settings.keys_dir)))


def test_cli_search_prints_pages_counts_and_json(gate: Gate) -> None:
    with gate.db.transaction() as conn:
        trail.append(conn, _story())
    page = gate.json("audit", "search", "--recipient-domain", "gmail.com", "--limit", "2")
    assert [e["event"] for e in page["events"]] == ["policy", "accepted"]
    assert page["events"][0]["recipients"] == ["Pat@Gmail.com"]  # as recorded
    assert page["events"][0]["time"] == "2026-05-28T20:26:41+00:00"
    rest = gate.json(
        "audit", "search", "--recipient-domain", "gmail.com", "--after", str(page["next_after"])
    )
    assert [e["event"] for e in rest["events"]] == ["deferred", "bounced"]
    assert rest["next_after"] is None

    text = gate.cli("audit", "search", "--since", "2026-05-29", "--until", "2026-05-29")
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert len(lines) == 4 and "released" in lines[2] and "by=cli:alice" in lines[2]
    assert "[mode=smime tls=TLSv1.3" in lines[3] and "verify=pkix" in lines[3]
    more = gate.cli("audit", "search", "--event", "policy", "--limit", "1")
    assert more.stdout.splitlines()[-1] == "... more: add --after 2"

    counted = gate.json("audit", "search", "--count", "--event", "delivered", "--event", "dsn")
    assert counted == {"total": 3, "by_event": {"delivered": 2, "dsn": 1}}
    counted_text = gate.cli("audit", "search", "--count", "--tls", "dane-ee").stdout
    assert counted_text.split() == ["1", "delivered", "1", "total"]
    assert "No matching events." in gate.cli("audit", "search", "--rule", "nope").stdout

    bad = gate.cli("audit", "search", "--since", "last tuesday")
    assert bad.exit_code == 2 and "not a date or time" in bad.output
    assert "Traceback" not in bad.output
    assert gate.cli("audit", "search", "--tls", "maybe").exit_code == 2


def test_cli_show_tells_a_message_s_life(gate: Gate) -> None:
    with gate.db.transaction() as conn:
        trail.append(conn, _story())
    life = gate.json("audit", "show", Q1)
    assert [(s["step"], s["event"]) for s in life["steps"]] == [
        ("decision", "policy"), ("decision", "policy"), ("accepted", "accepted"),
        ("attempt", "delivered"), ("attempt", "deferred"), ("attempt", "bounced"),
        ("dsn", "dsn"),
    ]  # fmt: skip
    summary = life["summary"]
    assert summary["principal"] == "ehr1" and summary["size"] == 2048
    assert summary["phi"] is True and summary["categories"] == ["clinical"]
    assert summary["message_id"] == "<a1@clinic.example>"
    assert summary["outcomes"] == {"kim@partner.example": "delivered", "pat@gmail.com": "bounced"}
    delivered = life["steps"][3]["facts"]
    assert delivered["verify"] == "dane-ee" and delivered["mx"] == "mx.partner.example"
    assert delivered["reply"] == "ok mode=fake verify=pin"
    assert life["steps"][0]["facts"]["rule"] == "phi-external"

    held = gate.json("audit", "show", Q2)
    assert [s["step"] for s in held["steps"]] == ["decision", "accepted", "admin", "attempt"]
    assert held["steps"][2]["actor"] == "cli:alice" and held["summary"]["phi"] is False

    text = gate.cli("audit", "show", Q1)
    assert text.exit_code == 0, text.output
    assert "phi=yes category=clinical" in text.stdout
    assert "message-id <a1@clinic.example>" in text.stdout
    missing = gate.cli("audit", "show", "NOSUCHQUEUEID")
    assert missing.exit_code == 1 and "no audit events about NOSUCHQUEUEID" in missing.output


def test_every_admin_action_names_who_made_it(gate: Gate) -> None:
    who = cli_actor()
    assert who.startswith("cli:") and len(who) > 4
    now = time.time()
    held = NewMessage("3HELDHELDHELDHELDHE3", now, "submission", "ehr1", "192.0.2.7",
                      "dr@clinic.example", 10, None, gate.keyring.seal(b"x", b"3HELD"))  # fmt: skip
    with gate.db.transaction() as conn:
        queue.insert_message(conn, held, [NewJob("a@partner.example", ("tls",), held=True)])
    steps = [
        ("principal", "add", "crm", "--domain", "clinic.example"),
        ("principal", "set-from-domains", "crm", "brand.example"),
        ("principal", "disable", "crm"),
        ("principal", "enable", "crm"),
        ("token", "add", "siem", "--scope", "consent"),
        ("token", "revoke", "siem"),
        ("consent", "grant", "pat@home.example", "--purpose", "marketing"),
        ("queue", "release", held.queue_id),
        ("queue", "retry", held.queue_id),
        ("queue", "delete", held.queue_id),
        ("keys", "rotate"),
    ]
    for args in steps:
        result = gate.cli(*args)
        assert result.exit_code == 0, (args, result.output)
    old_key = gate.keyring.key_ids[0]
    retired = gate.cli("keys", "retire", old_key)
    assert retired.exit_code == 0, retired.output
    found = gate.json("audit", "search", "--actor", who)["events"]
    assert [(e["event"], e["result"]) for e in found] == [
        ("principal", "added"), ("principal", "from_domains"), ("principal", "disabled"),
        ("principal", "enabled"), ("api_token", "added"), ("api_token", "revoked"),
        ("consent_granted", "ok"), ("released", "admin"), ("retried", "admin"),
        ("deleted", "admin"), ("master_key", "rotated"), ("master_key", "retired"),
    ]  # fmt: skip
    assert found[-1]["detail"] == f"key={old_key}"
    life = gate.json("audit", "show", held.queue_id)
    assert {s["step"] for s in life["steps"]} == {"admin"}
    assert all(s["actor"] == who for s in life["steps"])
    with gate.db.reading() as conn:
        assert verify(conn, _key(gate.db)).ok  # the actor is hashed, like every field


def _key(db: Database) -> AuditKey:
    assert db.audit_key is not None
    return db.audit_key


# --- the migration ----------------------------------------------------------------------


def test_events_from_before_the_migration_are_indexed_and_keep_their_hashes(
    database_url: str,
) -> None:
    """Events written before revision 0010 are pending for the indexer, then get their
    search keys and recipient rows; their hashes, computed without those columns,
    still verify."""
    db = Database(database_url, audit_key=AuditKey(os.urandom(32)))
    try:
        cfg = AlembicConfig()
        cfg.set_main_option(
            "script_location", str(Path(store_module.__file__).parent / "migrations")
        )
        with db.write_engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0009")
        old_columns = (
            "ts", "event", "queue_id", "principal", "client_ip", "sender", "recipients", "size",
            "result", "code", "detail",
        )  # fmt: skip
        prev = trail.GENESIS
        with db.write_engine.begin() as conn:
            for event in _story():
                row = {name: getattr(event, name) for name in old_columns}
                row["recipients"] = json.dumps(list(event.recipients))
                digest = trail.chain_hash(trail.KEYED_CHAIN, _key(db), prev, row)
                names = ", ".join(row)
                conn.execute(
                    text(
                        f"INSERT INTO audit_events ({names}, prev_hash, hash, chain_version) "
                        f"VALUES ({', '.join(':' + n for n in row)}, :prev, :hash, 2)"
                    ),
                    {**row, "prev": prev, "hash": digest},
                )
                prev = digest
        db.migrate()
        with db.reading() as conn:
            before = verify(conn, _key(db))
            assert [p.reason for p in before.problems if p.event_id] == []
            assert before.unindexed == len(_story())
            assert search.search(conn, Filters(rule="hold-large")).events == []
        assert indexer.catch_up(db, batch=5) == len(_story())  # several batches
        with db.reading() as conn:
            report = verify(conn, _key(db))
            assert [p.reason for p in report.problems if p.event_id] == []
            assert report.unindexed == 0
            assert [e.event for e in search.search(conn, Filters(rule="hold-large")).events] == [
                "policy"
            ]
            assert len(search.search(conn, Filters(recipient_domain="gmail.com")).events) == 4
            assert len(search.search(conn, Filters(tls="none")).events) == 1
            assert len(search.search(conn, Filters(queue_id=Q1)).events) == 7  # with its DSN
    finally:
        db.close()
