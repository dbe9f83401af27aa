"""Audit search and timelines on a real store (SQLite, and PostgreSQL when named):
each filter, paging, counts, `phigate audit search/show`, who made each admin
change, the search keys kept honest by `audit verify`, and the migration that
fills them in for events written before them. Output is metadata only."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import text

from gateway import datadir
from gateway.audit import search, trail
from gateway.audit.search import Filters
from gateway.audit.trail import AuditEvent
from gateway.audit.verify import verify
from gateway.cli import main
from gateway.delivery.client import RecipientResult, TlsEvidence
from gateway.delivery.outcomes import audit_detail
from gateway.settings_loader import load_settings
from gateway.store.database import Database

CANARY = "canary-audit-search-7w3 Diagnosis for Pat Example"
T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z
DAY = 86400.0
Q1, Q2, DSN_Q = "1AAAAAAAAAAAAAAAAAAA1", "2BBBBBBBBBBBBBBBBBBB2", "9DDDDDDDDDDDDDDDDDDD9"


def _policy(
    q: str, rcpt: str, rule: str, version: str, ts: float, phi: str = "yes", action: str = "deliver"
) -> AuditEvent:
    detail = f"policy={version} category=clinical rule={rule} consent=not-needed via=tls,portal phi={phi}"
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
        ),  # fmt: skip
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
        ),  # fmt: skip
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
        ),  # fmt: skip
        AuditEvent(
            "released",
            "admin",
            queue_id=Q2,
            recipients=("lee@partner.example",),
            ts=T0 + DAY + 10,
            actor="cli:alice",
        ),  # fmt: skip
        _attempt(Q2, "lee@partner.example", "delivered", "smime", "pkix", T0 + DAY + 20),
        AuditEvent("principal", "disabled", principal="crm", ts=T0 + 2 * DAY, actor="cli:bob"),
    ]


@pytest.fixture
def filled(db: Database) -> Database:
    with db.transaction() as conn:
        trail.append(conn, _story())
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
    with pytest.raises(search.FilterError, match="limit must be 1 to"):
        with filled.reading() as conn:
            search.search(conn, Filters(), limit=0)


def test_summary_counts_matches_by_kind(filled: Database) -> None:
    with filled.reading() as conn:
        counted = search.summary(conn, Filters(until=T0 + DAY))
    assert counted.total == 8
    assert counted.by_event == {
        "policy": 2, "accepted": 1, "auth": 1, "bounced": 1, "deferred": 1, "delivered": 1,
        "dsn": 1,
    }  # fmt: skip
    assert list(counted.by_event)[0] == "policy"  # most frequent first


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


def test_parse_when_reads_dates_and_times() -> None:
    assert search.parse_when("2026-05-28") == 1779926400.0
    assert search.parse_when("2026-05-28", end=True) == 1779926400.0 + DAY
    assert search.parse_when("2026-05-28T01:00") == 1779926400.0 + 3600
    assert search.parse_when("2026-05-28T02:00+01:00") == 1779926400.0 + 3600
    with pytest.raises(search.FilterError, match="not a date or time"):
        search.parse_when("yesterday")
