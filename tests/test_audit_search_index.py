"""The search index behind the chain (gateway.audit.indexer): appending writes only
the hashed event; the indexer derives search keys and recipient rows afterwards,
a batch per transaction, past a durable mark. A search never misses an event
that got its 250, a crash between append and index loses nothing, two indexers
index each event once, and `audit verify` tells pending events from tampered
ones. On a real store (SQLite, and PostgreSQL when named) and a running server."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Phigate, message, wait_until
from sqlalchemy import Connection, func, select, text
from test_audit_search import Q1, _story

from gateway.audit import indexer, search, trail
from gateway.audit.search import Filters
from gateway.audit.trail import AuditEvent
from gateway.audit.verify import verify
from gateway.store.audit_facets import COLUMNS, fields
from gateway.store.database import Database
from gateway.store.schema import audit_events, audit_recipients

CANARY_SUBJECT = "canary-subject-ix8 Referral for Pat Example"
CANARY_BODY = "canary-body-ix8 MRN 00123456"


def _appended(db: Database, events: list[AuditEvent]) -> None:
    with db.transaction() as conn:
        trail.append(conn, events)


def _pending(conn: Connection) -> int:
    """Events past the indexer's mark."""
    past = audit_events.c.id > indexer.indexed_through(conn)
    return int(
        conn.execute(select(func.count()).select_from(audit_events).where(past)).scalar_one()
    )


def _recipient_rows(db: Database) -> int:
    with db.reading() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_recipients)).scalar_one())


def test_appending_writes_no_search_keys_and_the_indexer_fills_them_in(db: Database) -> None:
    _appended(db, _story())
    with db.reading() as conn:
        keys = conn.execute(select(*(audit_events.c[n] for n in COLUMNS))).all()
        assert all(value is None for row in keys for value in row)
        assert indexer.indexed_through(conn) == 0
        assert _pending(conn) == len(_story())
    assert _recipient_rows(db) == 0
    assert indexer.catch_up(db, batch=4) == len(_story())
    with db.reading() as conn:
        assert _pending(conn) == 0
        assert indexer.indexed_through(conn) == len(_story())
        [bounced] = search.search(conn, Filters(tls="unverified")).events
        assert bounced.event == "bounced" and bounced.queue_id == Q1
        assert verify(conn, _key(db)).ok
    assert indexer.catch_up(db) == 0  # nothing left: a second pass does nothing


def test_a_batch_that_does_not_commit_leaves_its_events_pending(db: Database) -> None:
    """A crash mid-batch is a rollback: the mark did not move, so nothing is skipped."""
    _appended(db, _story())

    class Crash(Exception):
        pass

    with pytest.raises(Crash), db.transaction() as conn:
        assert indexer.index_batch(conn, limit=5) == 5
        raise Crash
    with db.reading() as conn:
        assert indexer.indexed_through(conn) == 0
        assert search.search(conn, Filters(rule="phi-external")).events == []
    assert _recipient_rows(db) == 0
    indexer.catch_up(db)
    with db.reading() as conn:
        assert [e.id for e in search.search(conn, Filters(rule="phi-external")).events] == [2]
        assert verify(conn, _key(db)).ok


def test_the_server_s_indexer_runs_in_the_write_queue(db: Database) -> None:
    """`Indexer.run_once` (what the server's pass and a page's search call) indexes
    through the group-committing writer, in batches."""
    _appended(db, _story())
    done = asyncio.run(indexer.Indexer(db, interval=3600, max_delay=3600, batch=3).run_once())
    assert done == len(_story())
    with db.reading() as conn:
        assert _pending(conn) == 0
        assert len(search.search(conn, Filters(recipient_domain="gmail.com")).events) == 4


def test_two_indexers_at_once_index_each_event_once(db: Database) -> None:
    many = [
        AuditEvent(
            "policy", "accepted", queue_id=f"Q{i:019d}", recipients=(f"r{i}@d{i % 7}.example",),
            detail=f"policy=9 rule=r{i % 5} via=tls phi=no",
        )
        for i in range(600)
    ]  # fmt: skip
    _appended(db, many)
    # As the server and CLI searches are: each with its own store (and write lock).
    stores = [Database(db.url, audit_key=db.audit_key) for _ in range(3)]
    failures: list[Exception] = []

    def run(store: Database) -> None:
        try:
            indexer.catch_up(store, batch=7)
        except Exception as exc:  # reported by the assertion below
            failures.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(s,)) for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        for store in stores:
            store.close()
    assert failures == []
    assert _recipient_rows(db) == 600
    with db.reading() as conn:
        assert search.summary(conn, Filters(rule="r3")).total == 120
        report = verify(conn, _key(db))
        assert report.ok and report.unindexed == 0


def test_verify_tells_pending_events_from_tampered_ones(db: Database) -> None:
    _appended(db, _story())
    key = _key(db)
    with db.reading() as conn:
        report = verify(conn, key)
    assert report.ok and report.unindexed == len(_story())
    assert any("not indexed for search yet" in note for note in report.notes)
    # Written ahead of the indexer: recipient rows for a pending event (they would
    # otherwise stop indexing for good), and a search key on an event that has none.
    with db.transaction() as conn:
        conn.execute(
            text("INSERT INTO audit_recipients VALUES (2, 'decoy@elsewhere.example', 'x')")
        )
        conn.execute(text("UPDATE audit_events SET rule = 'planted' WHERE id = 1"))
    indexer.catch_up(db)
    with db.reading() as conn:
        assert search.search(conn, Filters(recipient="decoy@elsewhere.example")).events == []
        report = verify(conn, key)
    [problem] = report.problems
    assert problem.event_id == 1 and "search keys" in problem.reason
    assert report.unindexed == 0
    # Edited after indexing: a search key and a recipient row.
    with db.transaction() as conn:
        conn.execute(text("UPDATE audit_events SET rule = NULL WHERE id = 1"))
        conn.execute(text("UPDATE audit_events SET tls = 'pkix' WHERE tls = 'unverified'"))
        conn.execute(text("DELETE FROM audit_recipients WHERE event_id = 4"))
    with db.reading() as conn:
        report = verify(conn, key)
    assert [p.event_id for p in report.problems] == [4, 7]
    assert all("search keys" in p.reason for p in report.problems)


def _key(db: Database) -> Any:
    assert db.audit_key is not None
    return db.audit_key


# --- a running server ---------------------------------------------------------------------


def _verified(gw: Phigate) -> dict[str, Any]:
    report: dict[str, Any] = gw.json("audit", "verify")
    assert report["ok"], report["problems"]
    return report


def _with_index_interval(gw: Phigate, seconds: float) -> None:
    gw.settings["audit"] = {"index_every_seconds": seconds}
    gw.config.write_text(yaml.safe_dump(gw.settings))


def test_a_search_right_after_250_finds_the_message_before_the_indexer_runs(
    tmp_path: Path,
) -> None:
    gw = Phigate(tmp_path, audit={"index_every_seconds": 3600})  # no background pass
    secret = gw.add_principal("ehr1", "clinic.example.org")
    sender = "dr@clinic.example.org"
    with gw:
        raw = message(sender, "kim@partner.test", CANARY_SUBJECT, CANARY_BODY)
        assert gw.submit(secret, sender, ["kim@partner.test"], raw) == {}  # 250
        assert _verified(gw)["unindexed"] > 0  # nothing has indexed it yet
        found = gw.json("audit", "search", "--recipient-domain", "PARTNER.test")["events"]
        assert [e["event"] for e in found[:2]] == ["policy", "accepted"]
        queue_id = found[1]["queue_id"]
        rule = fields(found[0]["detail"])["rule"]
        decided = gw.json("audit", "search", "--rule", rule, "--queue-id", queue_id)
        assert [e["event"] for e in decided["events"]] == ["policy"]
        texts = gw.cli("audit", "show", queue_id).stdout + gw.log_text()
    for canary in ("canary-subject-ix8", "canary-body-ix8", "00123456", "Referral"):
        assert canary not in texts


def test_events_of_a_killed_server_are_indexed_when_it_runs_again(tmp_path: Path) -> None:
    gw = Phigate(tmp_path, audit={"index_every_seconds": 3600})
    secret = gw.add_principal("ehr1", "clinic.example.org")
    sender = "dr@clinic.example.org"
    gw.start()
    try:
        for n in range(3):
            gw.submit(secret, sender, [f"pat{n}@partner.test"])
        # AUTH, decision, acceptance and delivery of each: the server has done its part.
        wait_until(lambda: _verified(gw)["events"] >= 12, timeout=60)
    finally:
        gw.kill()  # between append and index
    pending = _verified(gw)["unindexed"]
    assert pending >= 12
    _with_index_interval(gw, 0.2)
    with gw:
        wait_until(lambda: _verified(gw)["unindexed"] == 0, timeout=60)  # no search ran
    counted = gw.json("audit", "search", "--recipient-domain", "partner.test", "--count")
    assert counted["by_event"]["accepted"] == 3 and counted["by_event"]["policy"] == 3


def test_the_server_s_passes_wait_while_mail_flows_but_not_past_the_delay(db: Database) -> None:
    """A burst of mail keeps the CPU: passes are put off while the trail grows, and
    run at the latest after `max_delay` even if it never stops growing."""
    _appended(db, _story())

    def pending_now() -> int:
        with db.reading() as conn:
            return _pending(conn)

    def through() -> int:
        with db.reading() as conn:
            return indexer.indexed_through(conn)

    async def scenario() -> tuple[int, int]:
        flowing = asyncio.Event()
        flowing.set()

        async def mail() -> None:  # an event every 20 ms, as intake under load
            n = 0
            while flowing.is_set():
                n += 1
                event = AuditEvent("auth", "ok", principal=f"p{n}")
                await db.write(lambda conn, e=event: trail.append(conn, [e]))
                await asyncio.sleep(0.02)

        writer = asyncio.create_task(mail())
        patient_stop, prompt_stop = asyncio.Event(), asyncio.Event()
        patient = indexer.Indexer(db, interval=0.05, max_delay=3600)
        task = asyncio.create_task(patient.run_forever(patient_stop))
        await asyncio.sleep(1.5)  # several intervals, mail flowing all along
        patient_stop.set()
        await task
        while_flowing = pending_now()
        prompt = indexer.Indexer(db, interval=0.05, max_delay=0.2)
        task = asyncio.create_task(prompt.run_forever(prompt_stop))
        for _ in range(600):  # mail still flows; the delay runs out
            if through() >= len(_story()):
                break
            await asyncio.sleep(0.05)
        prompt_stop.set()
        await task
        flowing.clear()
        await writer
        return while_flowing, through()

    while_flowing, indexed = asyncio.run(scenario())
    assert while_flowing >= len(_story())  # nothing was indexed while mail flowed
    assert indexed >= len(_story())
