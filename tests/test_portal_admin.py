"""The portal's admin side on a real store (SQLite, and PostgreSQL when named):
`phigate portal ls/show/recall/extend`, the expiry task, and what each leaves
in the audit trail. A recalled or expired copy no longer opens with its link."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from portal_copies import DAY, Made, make_copy, open_copy
from residue import residue
from stores import cli_store

from gateway.audit import history
from gateway.audit.verify import verify
from gateway.cli import main
from gateway.cli.common import cli_actor
from gateway.config import Settings
from gateway.portal import custody, lifecycle
from gateway.portal.custody import CustodyError, Link
from gateway.portal.expiry import Expiry
from gateway.store import portal
from gateway.store.database import Database
from gateway.store.keyring import Keyring

CANARY = b"Diagnosis: canary-portal-admin-5q8 for Pat Example"
PASSPHRASE_HASH = "$argon2id$v=19$m=65536,t=3,p=4$canaryhash5q8"


@dataclass
class Gate:
    """A data dir and store as `phigate` opens them, and the config the CLI reads."""

    config: Path
    settings: Settings
    keyring: Keyring
    db: Database

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(main, ["portal", *args, "-c", str(self.config)])

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def copy(self, recipient: str, **kwargs: Any) -> Made:
        with self.db.transaction() as conn:
            return make_copy(conn, self.keyring, recipient, CANARY, now=time.time(), **kwargs)

    def opens(self, made: Made) -> bytes | None:
        with self.db.reading() as conn:
            return open_copy(conn, self.keyring, made)

    def copy_of(self, made: Made) -> portal.Copy:
        with self.db.reading() as conn:
            found = portal.by_id(conn, made.id)
        assert found is not None
        return found

    def events(self, queue_id: str) -> list[history.Recorded]:
        with self.db.reading() as conn:
            return history.of_message(conn, queue_id, "portal_")


@contextmanager
def _gate(tmp_path: Path, database_url: str) -> Iterator[Gate]:
    with cli_store(tmp_path, database_url) as (config, settings, db):
        yield Gate(config, settings, Keyring(settings.path(settings.keys_dir)), db)


@pytest.fixture
def gate(tmp_path: Path, database_url: str) -> Iterator[Gate]:
    with _gate(tmp_path, database_url) as made:
        yield made


# --- ls and show ------------------------------------------------------------------------


def test_ls_lists_copies_newest_first_with_their_shown_state(gate: Gate) -> None:
    first = gate.copy("pat@home.example")
    late = gate.copy("kim@home.example", expires_in=-60)  # its time has run out, not yet shredded
    listed = gate.json("ls")
    assert [(r["queue_id"], r["recipient"], r["state"]) for r in listed] == [
        (late.queue_id, "kim@home.example", "expired"),
        (first.queue_id, "pat@home.example", "waiting"),
    ]
    assert set(listed[0]) == {
        "queue_id", "recipient", "state", "created_at", "expires_at", "views", "downloads",
    }  # fmt: skip
    assert listed[1]["expires_at"] - listed[1]["created_at"] == pytest.approx(30 * DAY)
    assert gate.copy_of(late).state == "waiting"  # the store still says so; ls tells the truth

    assert [r["recipient"] for r in gate.json("ls", "--state", "expired")] == ["kim@home.example"]
    assert [r["recipient"] for r in gate.json("ls", "--state", "waiting")] == ["pat@home.example"]
    assert gate.json("ls", "--state", "recalled") == []
    assert len(gate.json("ls", "--limit", "1")) == 1

    text = gate.cli("ls")
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[0].startswith(late.queue_id) and "expired" in lines[0]
    assert "views=0" in lines[1] and "downloads=0" in lines[1] and "pat@home.example" in lines[1]
    assert gate.cli("ls", "--state", "opened").stdout == "No portal messages in state opened.\n"
    wrong = gate.cli("ls", "--state", "lost")
    assert wrong.exit_code == 2 and "waiting" in wrong.stderr


def test_show_gives_metadata_and_the_portal_history_without_content_or_hashes(gate: Gate) -> None:
    made = gate.copy("pat@home.example", passphrase_hash=PASSPHRASE_HASH)
    other = gate.copy("kim@home.example", queue_id=made.queue_id)
    with gate.db.transaction() as conn:
        assert portal.record_view(conn, made.id, time.time())
        lifecycle.recall(conn, made.queue_id, "kim@home.example", "cli:kim", time.time())
    shown = gate.json("show", made.queue_id)
    copies = {c["recipient"]: c for c in shown["copies"]}
    assert copies["pat@home.example"]["state"] == "opened"
    assert copies["pat@home.example"]["views"] == 1
    assert copies["pat@home.example"]["access"] == "passphrase"
    assert copies["kim@home.example"]["state"] == "recalled"
    assert copies["kim@home.example"]["closed_at"] is not None
    assert [(e["event"], e["recipients"], e["detail"]) for e in shown["history"]] == [
        ("portal_recalled", [other.recipient], "by=cli:kim")
    ]
    text = gate.cli("show", made.queue_id)
    assert text.exit_code == 0
    assert "pat@home.example: opened" in text.stdout and "kim@home.example: recalled" in text.stdout
    assert "portal_recalled" in text.stdout and "by=cli" in text.stdout
    for output in (json.dumps(shown), text.stdout):
        assert "canary" not in output.lower()  # neither content nor the passphrase's hash
        assert made.link.verifier not in output and made.link.token not in output

    unknown = gate.cli("show", "0000000000000000000NONE")
    assert unknown.exit_code == 1
    assert "no portal message 0000000000000000000NONE" in unknown.stderr
    assert "phigate portal ls" in unknown.stderr


# --- recall ---------------------------------------------------------------------------


def test_recall_makes_every_copy_unreadable_shreds_it_and_audits(gate: Gate) -> None:
    made = gate.copy("pat@home.example")
    other = gate.copy("kim@home.example", queue_id=made.queue_id)
    assert gate.opens(made) == CANARY and gate.opens(other) == CANARY

    result = gate.cli("recall", made.queue_id)
    assert result.exit_code == 0, result.output
    assert f"Recalled {made.queue_id}" in result.stdout and "content destroyed" in result.stdout
    for copy in (made, other):
        assert gate.copy_of(copy).state == "recalled"
        assert gate.opens(copy) is None  # the link finds the copy, but nothing is left to open
    with gate.db.reading() as conn:
        left = conn.exec_driver_sql(
            "SELECT count(*) FROM portal_messages "
            "WHERE wrapped_key IS NOT NULL OR content IS NOT NULL OR key_id IS NOT NULL"
        ).scalar_one()
    assert left == 0
    events = gate.events(made.queue_id)
    assert {(e.event, e.recipients, e.detail, e.result) for e in events} == {
        ("portal_recalled", ("pat@home.example",), f"by={cli_actor()}", "ok"),
        ("portal_recalled", ("kim@home.example",), f"by={cli_actor()}", "ok"),
    }  # the OS user who ran the command
    with gate.db.reading() as conn:
        report = verify(conn, gate.db.audit_key)  # type: ignore[arg-type]
    assert report.ok

    again = gate.cli("recall", made.queue_id)
    assert again.exit_code == 1
    assert "has no open copy (2 recalled): nothing to recall" in again.stderr
    assert "pat@home.example: recalled" in again.stderr
    assert len(gate.events(made.queue_id)) == 2  # nothing more was recorded


def test_recall_of_one_recipient_leaves_the_others_readable(gate: Gate) -> None:
    made = gate.copy("pat@home.example")
    other = gate.copy("kim@home.example", queue_id=made.queue_id)
    result = gate.cli("recall", made.queue_id, "--recipient", "kim@HOME.example")
    assert result.exit_code == 0, result.output
    assert gate.copy_of(other).state == "recalled" and gate.opens(other) is None
    assert gate.copy_of(made).state == "waiting" and gate.opens(made) == CANARY

    nobody = gate.cli("recall", made.queue_id, "--recipient", "nobody@home.example")
    assert nobody.exit_code == 1 and "has no copy for that recipient" in nobody.stderr
    bad = gate.cli("recall", made.queue_id, "--recipient", "not an address")
    assert bad.exit_code == 2 and "--recipient" in bad.stderr
    unknown = gate.cli("recall", "0000000000000000000NONE")
    assert unknown.exit_code == 1 and "no portal message 0000000000000000000NONE" in unknown.stderr
    assert gate.opens(made) == CANARY


def test_a_copy_past_its_time_counts_as_expired_and_is_not_recalled(gate: Gate) -> None:
    late = gate.copy("pat@home.example", expires_in=-1)
    refused = gate.cli("recall", late.queue_id)
    assert refused.exit_code == 1 and "(1 expired)" in refused.stderr
    assert gate.events(late.queue_id) == []


# --- extend ---------------------------------------------------------------------------


def test_extend_moves_the_expiry_of_open_copies_and_audits_the_dates(gate: Gate) -> None:
    made = gate.copy("pat@home.example")
    before = gate.copy_of(made).expires_at
    result = gate.cli("extend", made.queue_id, "--days", "7")
    assert result.exit_code == 0, result.output
    assert f"Extended {made.queue_id} for pat@home.example" in result.stdout
    after = gate.copy_of(made).expires_at
    assert after == pytest.approx(before + 7 * DAY)
    [event] = gate.events(made.queue_id)
    dates = [time.strftime("%Y-%m-%d", time.gmtime(ts)) for ts in (before, after)]
    assert (event.event, event.detail) == ("portal_extended", "->".join(dates))
    assert gate.opens(made) == CANARY  # extending never touches the content

    for days in ("0", "3651", "x"):
        assert gate.cli("extend", made.queue_id, "--days", days).exit_code == 2
    assert gate.cli("extend", made.queue_id).exit_code == 2  # --days is required


def test_a_closed_copy_cannot_be_extended(gate: Gate) -> None:
    made = gate.copy("pat@home.example")
    gate.cli("recall", made.queue_id)
    refused = gate.cli("extend", made.queue_id, "--days", "5")
    assert refused.exit_code == 1
    assert "content is shredded, so it cannot be extended" in refused.stderr
    assert "pat@home.example: recalled" in refused.stderr
    assert [e.event for e in gate.events(made.queue_id)] == ["portal_recalled"]


# --- expiry ---------------------------------------------------------------------------


def test_the_expiry_task_closes_due_copies_in_batches_and_leaves_others(gate: Gate) -> None:
    due = [gate.copy(f"due{i}@home.example", expires_in=-60) for i in range(5)]
    live = gate.copy("live@home.example")
    recalled = gate.copy("gone@home.example", expires_in=-60)
    with gate.db.transaction() as conn:  # closed before its time ran out
        portal.close(conn, [recalled.id], portal.RECALLED, time.time())

    async def one_pass() -> int:
        gate.db.start()
        return await Expiry(gate.db, interval=0.05, batch=2).run_once(time.time())

    assert asyncio.run(one_pass()) == 5
    for made in due:
        assert gate.copy_of(made).state == "expired" and gate.opens(made) is None
        [event] = gate.events(made.queue_id)
        assert (event.event, event.recipients, event.detail) == (
            "portal_expired", (made.recipient,), "by=expiry",
        )  # fmt: skip
    assert gate.copy_of(live).state == "waiting" and gate.opens(live) == CANARY
    assert gate.copy_of(recalled).state == "recalled"  # closed once, as it was
    assert gate.events(recalled.queue_id) == []


def test_the_expiry_task_runs_until_stopped(gate: Gate) -> None:
    async def scenario() -> None:
        gate.db.start()
        stop = asyncio.Event()
        task = asyncio.create_task(Expiry(gate.db, interval=0.05).run_forever(stop))
        made = gate.copy("soon@home.example", expires_in=0.3)
        deadline = time.monotonic() + 10
        while gate.copy_of(made).state != "expired" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)
        assert gate.copy_of(made).state == "expired"

    asyncio.run(scenario())


# --- shredding leaves nothing on disk (SQLite keeps old pages unless told) -------------


def test_recall_leaves_no_key_or_ciphertext_in_the_sqlite_files(tmp_path: Path) -> None:
    path = tmp_path / "phigate.db"
    with _gate(tmp_path, f"sqlite:///{path}") as gate:
        made = gate.copy("pat@home.example")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        [(wrapped, content)] = conn.execute("SELECT wrapped_key, content FROM portal_messages")
        conn.close()
        assert residue(path, wrapped, content)  # the search finds them while the copy is stored
        assert gate.cli("recall", made.queue_id).exit_code == 0
        assert residue(path, wrapped, content) == []


# --- key rotation ---------------------------------------------------------------------


def test_key_rotation_rewraps_a_copy_that_still_opens_with_its_link_once_the_old_key_is_gone(
    gate: Gate,
) -> None:
    made = gate.copy("pat@home.example")
    old_key = gate.keyring.current_key_id
    rotated = CliRunner().invoke(main, ["keys", "rotate", "--json", "-c", str(gate.config)])
    assert rotated.exit_code == 0, rotated.output
    done = json.loads(rotated.stdout)
    assert done["rewrapped"] == 1 and done["retirable"] == [old_key]
    retired = CliRunner().invoke(main, ["keys", "retire", old_key, "-c", str(gate.config)])
    assert retired.exit_code == 0, retired.output
    keys_dir = gate.settings.path(gate.settings.keys_dir)
    assert not (keys_dir / f"{old_key}.key").exists()

    fresh = Keyring(keys_dir)  # only the files now on disk
    assert fresh.key_ids == [done["key_id"]]
    with gate.db.reading() as conn:
        assert open_copy(conn, fresh, made) == CANARY
        found = portal.by_verifier(conn, made.link.verifier)
    assert found is not None and found.sealed is not None
    assert found.sealed.key_id == done["key_id"]
    context = custody.context_of(made.queue_id, made.recipient)
    with pytest.raises(CustodyError):  # the master key alone still opens nothing
        custody.open_sealed(fresh, found.sealed, Link.new(), context)
