"""`phigate audit export` on a real store (SQLite, and PostgreSQL when named):
JSON lines and RFC 5424 syslog (checked with a parser we did not write), a
named cursor that resumes where the last run stopped and moves only once the
output is written, the export's own audit event, and the forwarder's lease."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from stores import cli_store
from syslog_rfc5424_parser import SyslogMessage

from gateway.audit import cursors, search, trail
from gateway.audit.formats import SyslogFormat, jsonl_line, octet_counted, param_value
from gateway.audit.trail import AuditEvent
from gateway.cli import main
from gateway.cli.common import cli_actor
from gateway.config import Settings, SyslogConfig
from gateway.store.database import Database

T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z


@pytest.fixture
def store(tmp_path: Path, database_url: str) -> Iterator[tuple[Path, Settings, Database]]:
    with cli_store(tmp_path, database_url) as opened:
        yield opened


def _events(db: Database, count: int, start: float = T0) -> None:
    with db.transaction() as conn:
        trail.append(
            conn,
            [
                AuditEvent(
                    "accepted",
                    "ok",
                    queue_id=f"Q{i:04d}",
                    principal="ehr1",
                    client_ip="192.0.2.7",
                    sender="dr@clinic.example",
                    recipients=("a@partner.example", "B@Partner.example"),
                    size=1200 + i,
                    detail=f"message-id=<{i}@clinic.example>",
                    ts=start + i,
                )
                for i in range(count)
            ],
        )


def _export(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["audit", "export", "-c", str(config), *args])


def _stored(db: Database) -> list[search.Event]:
    with db.reading() as conn:
        return search.search(conn, search.Filters(), search.MAX_LIMIT).events


def test_jsonl_export_resumes_from_its_cursor(store: tuple[Path, Settings, Database]) -> None:
    config, _, db = store
    out = config.parent / "siem.jsonl"
    _events(db, 5)
    first = _export(config, "--cursor", "siem", "--output", str(out))
    assert first.exit_code == 0, first.output
    assert "Exported 5 events (events 1 to 5)" in first.output
    _events(db, 3, T0 + 100)
    second = _export(config, "--cursor", "siem", "--output", str(out))
    assert second.exit_code == 0, second.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    # The second run starts after the first run's last event: its own audit
    # event (id 6) and the three new ones; nothing twice.
    assert [e["id"] for e in lines] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    stored = {e.id: e for e in _stored(db)}
    for line in lines:
        assert line == stored[line["id"]].as_json()
        assert set(line) >= {"id", "hash", "event", "result", "ts", "recipients", "detail"}
    assert lines[0]["recipients"] == ["a@partner.example", "B@Partner.example"]
    assert out.stat().st_mode & 0o777 == 0o600
    with db.reading() as conn:
        cursor = cursors.get(conn, "siem")
    assert cursor is not None and cursor.event_id == 9


def test_exports_are_audited_with_metadata_only(store: tuple[Path, Settings, Database]) -> None:
    config, _, db = store
    _events(db, 2)
    result = _export(config, "--cursor", "nightly", "--from", "2026-05-28", "--to", "2026-05-28")
    assert result.exit_code == 0, result.output
    [audited] = [e for e in _stored(db) if e.event == "audit_export"]
    assert audited.result == "ok" and audited.actor == cli_actor()
    assert audited.detail == (
        "format=jsonl cursor=nightly count=2 ids=1-2 "
        "since=2026-05-28T00:00:00 until=2026-05-29T00:00:00"
    )
    assert audited.recipients == () and audited.sender is None


def test_time_range_and_stdout(store: tuple[Path, Settings, Database]) -> None:
    config, _, db = store
    _events(db, 3)
    _events(db, 2, T0 + 3 * 86400)
    result = CliRunner().invoke(
        main, ["audit", "export", "-c", str(config), "--from", "2026-05-31T00:00"]
    )
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [4, 5]
    assert "Exported 2 events" in result.stderr  # the data stream stays pure


def test_a_failed_write_leaves_the_cursor_where_it_was(
    store: tuple[Path, Settings, Database],
) -> None:
    config, _, db = store
    _events(db, 4)
    assert _export(config, "--cursor", "siem", "-o", str(config.parent / "a.jsonl")).exit_code == 0
    _events(db, 2, T0 + 10)
    full = _export(config, "--cursor", "siem", "-o", "/dev/full")
    assert full.exit_code == 1
    assert "the cursor did not move" in full.output
    with db.reading() as conn:
        cursor = cursors.get(conn, "siem")
    assert cursor is not None and cursor.event_id == 4
    failed = [e for e in _stored(db) if e.event == "audit_export" and e.result == "failed"]
    assert len(failed) == 1  # a partial export is on record too
    again = _export(config, "--cursor", "siem", "-o", str(config.parent / "b.jsonl"))
    assert again.exit_code == 0, again.output
    ids = [json.loads(line)["id"] for line in (config.parent / "b.jsonl").read_text().splitlines()]
    assert ids[0] == 5  # at-least-once: what failed comes again


def test_a_cursor_the_forwarder_holds_is_refused(store: tuple[Path, Settings, Database]) -> None:
    config, _, db = store
    _events(db, 1)
    with db.transaction() as conn:
        assert cursors.take_lease(conn, "forwarder", "host:1", T0, 4e9) == 0
    result = _export(config, "--cursor", "forwarder")
    assert result.exit_code == 1
    assert "held by the live forwarder" in result.output
    bad = _export(config, "--cursor", "no spaces")
    assert bad.exit_code == 2 and "is not usable" in bad.output


def test_syslog_export_parses_as_rfc5424(store: tuple[Path, Settings, Database]) -> None:
    config, settings, db = store
    _events(db, 3)
    out = config.parent / "siem.log"
    assert _export(config, "--format", "syslog", "-o", str(out)).exit_code == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 3
    for line, stored in zip(lines, _stored(db)[:3], strict=True):
        parsed = SyslogMessage.parse(line).as_dict()
        assert parsed["version"] == 1
        assert parsed["facility"] == "audit" and parsed["severity"] == "info"
        assert parsed["hostname"] == settings.hostname and parsed["appname"] == "phigate"
        assert parsed["msgid"] == "accepted"
        data = parsed["sd"]["phigate@32473"]
        assert data["id"] == str(stored.id) and data["hash"] == stored.hash
        assert data["recipients"] == "a@partner.example,B@Partner.example"
        assert data["size"] == str(stored.size) and data["queue_id"] == stored.queue_id


def _unescape(value: str) -> str:
    # The parser returns PARAM-VALUEs as written (RFC 5424 section 6.3.3 escapes kept).
    out, chars = [], iter(value)
    for ch in chars:
        out.append(next(chars) if ch == "\\" else ch)
    return "".join(out)


def test_syslog_escapes_quote_backslash_and_bracket() -> None:
    nasty = 'reply: 550 "no" \\ [x] ] done'
    event = search.Event(
        id=7, ts=T0, event="bounced", result="failed", queue_id="Q1", principal=None,
        actor=None, client_ip=None, sender="", recipients=("x@y.example",), size=None,
        code=550, detail=nasty, hash="ab" * 32,
    )  # fmt: skip
    syslog = SyslogFormat(SyslogConfig(sd_id="acme@99999", facility=10), "mail.example.org")
    line = syslog.line(event)
    assert param_value(nasty) == 'reply: 550 \\"no\\" \\\\ [x\\] \\] done'
    parsed = SyslogMessage.parse(line).as_dict()
    assert parsed["facility"] == "authpriv" and parsed["severity"] == "notice"
    data = parsed["sd"]["acme@99999"]
    assert _unescape(data["detail"]) == nasty
    assert data["sender"] == ""
    assert octet_counted(line) == f"{len(line.encode())} {line}".encode()
    assert param_value("a\nb") == "a\ufffdb"  # one event, one line
    assert json.loads(jsonl_line(event))["detail"] == nasty


def test_the_forwarders_lease_lets_one_process_forward(db: Database) -> None:
    with db.transaction() as conn:
        assert cursors.take_lease(conn, "fwd", "a:1", T0, T0 + 30) == 0
        assert cursors.take_lease(conn, "fwd", "b:2", T0 + 1, T0 + 31) is None
        assert cursors.move_held(conn, "fwd", "a:1", 10, T0 + 2, T0 + 32)
        assert cursors.take_lease(conn, "fwd", "b:2", T0 + 20, T0 + 50) is None  # renewed
        # a stops renewing: b takes over where a left the cursor, and a can no longer move it
        assert cursors.take_lease(conn, "fwd", "b:2", T0 + 33, T0 + 63) == 10
        assert not cursors.move_held(conn, "fwd", "a:1", 12, T0 + 34, T0 + 64)
        assert cursors.move_held(conn, "fwd", "b:2", 11, T0 + 34, T0 + 64)
        cursors.release(conn, "fwd", "b:2")
        released = cursors.get(conn, "fwd")
        assert released is not None and released.event_id == 11 and released.holder is None


def test_a_cursor_moves_only_from_where_the_export_found_it(db: Database) -> None:
    with db.transaction() as conn:
        cursors.advance(conn, "siem", 0, 5, T0)  # created on first use
        with pytest.raises(cursors.CursorError, match="moved by something else"):
            cursors.advance(conn, "siem", 0, 9, T0)  # another first run finished before
        with pytest.raises(cursors.CursorError):
            cursors.advance(conn, "siem", 3, 9, T0)
        cursors.advance(conn, "siem", 5, 9, T0 + 1)
        moved = cursors.get(conn, "siem")
    assert moved is not None and (moved.event_id, moved.updated_at) == (9, T0 + 1)
