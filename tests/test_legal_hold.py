"""`phigate hold`: placing, listing, showing and releasing legal holds, audited with who did it;
what each part of a selector covers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from archived import DAY, archive
from click.testing import CliRunner, Result
from sqlalchemy import select
from stores import cli_store

from gateway.archive import holds
from gateway.archive.holds import Selector, covers
from gateway.cli import main
from gateway.cli.common import cli_actor
from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.store.schema import archived_messages, audit_events

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture
def gate(tmp_path: Path, database_url: str) -> Iterator[tuple[Path, Database]]:
    with cli_store(tmp_path, database_url) as (config, _settings, db):
        keyring = Keyring.create(tmp_path / "archive-keys")
        with db.transaction() as conn:
            archive(conn, keyring, "A1", T0, principal="ehr1", sender="Dr@Clinic.example")
            archive(conn, keyring, "A2", T0 + 10 * DAY, principal="crm", category="marketing",
                    sender="news@clinic.example", recipients=("pat@patients.example",),
                    phi=False)  # fmt: skip
            archive(conn, keyring, "A3", T0 + 40 * DAY, principal=None, sender="lab@lab.example",
                    recipients=("Inbox@Clinic.example", "x@other.example"))  # fmt: skip
        yield config, db


def cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["hold", *args, "-c", str(config)])


def as_json(config: Path, *args: str) -> Any:
    result = cli(config, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def covered(db: Database, selector: Selector) -> list[str]:
    with db.reading() as conn:
        query = select(archived_messages.c.queue_id).where(covers(selector))
        return sorted(conn.execute(query.order_by(archived_messages.c.queue_id)).scalars())


def test_each_part_of_a_selector(gate: tuple[Path, Database]) -> None:
    _, db = gate
    assert covered(db, Selector(queue_ids=("A1", "A3"))) == ["A1", "A3"]
    assert covered(db, Selector(principal="crm")) == ["A2"]
    assert covered(db, Selector(sender="dr@clinic.EXAMPLE")) == ["A1"]
    assert covered(db, Selector(recipient="inbox@clinic.example")) == ["A3"]
    # A domain covers mail from it and mail to it.
    assert covered(db, Selector(domain="clinic.example")) == ["A1", "A2", "A3"]
    assert covered(db, Selector(domain="patients.example")) == ["A2"]
    assert covered(db, Selector(since=T0 + DAY)) == ["A2", "A3"]
    assert covered(db, Selector(until=T0 + 10 * DAY)) == ["A1"]
    assert covered(db, Selector(category="marketing")) == ["A2"]
    # Every part written must hold.
    assert covered(db, Selector(domain="clinic.example", since=T0 + DAY, until=T0 + 20 * DAY)) == [
        "A2"
    ]
    with pytest.raises(holds.HoldError):
        covers(Selector())


def test_add_ls_show_release_are_audited_with_who(gate: tuple[Path, Database]) -> None:
    config, db = gate
    placed = as_json(
        config, "add", "--case", "2026-CV-0142 Roe v. Clinic", "--reason", "Jane Roe litigation",
        "--domain", "clinic.example", "--since", "2026-01-05", "--until", "2026-01-31",
    )  # fmt: skip
    assert placed["covers"] == {"messages": 1, "not_destroyed": 1}
    assert placed["created_by"] == cli_actor() and placed["released_at"] is None
    assert placed["selector"]["domain"] == "clinic.example"
    second = as_json(config, "add", "--case", "INV-7", "--reason", "inquiry", "--queue-id", "A1")

    listed = as_json(config, "ls")
    assert [h["id"] for h in listed] == [placed["id"], second["id"]]
    text = cli(config, "show", str(placed["id"])).stdout
    assert "case 2026-CV-0142 Roe v. Clinic" in text and "covers 1 archived message(s)" in text

    released = as_json(config, "release", str(second["id"]), "--reason", "closed")
    assert released["released_by"] == cli_actor() and released["release_reason"] == "closed"
    assert [h["id"] for h in as_json(config, "ls")] == [placed["id"]]
    assert [h["id"] for h in as_json(config, "ls", "--all")] == [placed["id"], second["id"]]
    again = cli(config, "release", str(second["id"]), "--reason", "twice")
    assert again.exit_code == 1 and "already released" in again.output
    missing = cli(config, "release", "999", "--reason", "x")
    assert missing.exit_code == 1 and "no legal hold #999" in missing.output

    with db.reading() as conn:
        events = list(
            conn.execute(
                select(audit_events)
                .where(audit_events.c.event.like("legal_hold_%"))
                .order_by(audit_events.c.id)
            )
        )
    assert [(e.event, e.actor) for e in events] == [
        (holds.PLACED, cli_actor()),
        (holds.PLACED, cli_actor()),
        (holds.RELEASED, cli_actor()),
    ]
    assert events[0].detail == f"hold={placed['id']} selector=domain,since,until"
    # The case and reason are free text: kept in the hold, never in the trail.
    for event in events:
        assert "Roe" not in repr(tuple(event)) and "inquiry" not in repr(tuple(event))


def test_a_hold_needs_a_selector_and_valid_values(gate: tuple[Path, Database]) -> None:
    config, _ = gate
    empty = cli(config, "add", "--case", "C", "--reason", "r")
    assert empty.exit_code == 2 and "a hold needs a selector" in empty.output
    bad = cli(config, "add", "--case", "C", "--reason", "r", "--category", "promo")
    assert bad.exit_code == 2 and "'promo' is not a category" in bad.output
    when = cli(config, "add", "--case", "C", "--reason", "r", "--since", "last week")
    assert when.exit_code == 2 and "--since" in when.output
    assert as_json(config, "ls") == []
