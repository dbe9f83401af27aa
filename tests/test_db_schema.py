"""`phigate db status|upgrade`, and who migrates the schema: the embedded SQLite store
upgrades itself; a shared PostgreSQL schema at an older (or newer) revision makes
`serve` and every command refuse, naming the fix, until `phigate db upgrade`."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from databases import postgres_database
from harness import PHIGATE, Phigate
from sqlalchemy import create_engine

from gateway.store import database
from gateway.store.database import Database, head_revision

OLDER = "0013"


def set_revision(url: str, revision: str) -> None:
    """Alembic's own downgrade (or a stamp ahead of the code): a schema as another
    version of phigate left it."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if revision > head_revision():
                conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{revision}'")
                return
            cfg = AlembicConfig()
            cfg.set_main_option(
                "script_location", str(Path(database.__file__).parent / "migrations")
            )
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with postgres_database(tmp_path) as url:
        yield url


def status(gw: Phigate) -> tuple[int, dict[str, object]]:
    result = gw.cli("db", "status", "--json", check=False)
    return result.returncode, json.loads(result.stdout)


def test_upgrade_brings_a_shared_schema_to_head_once(tmp_path: Path, postgres_url: str) -> None:
    gw = Phigate(tmp_path, database_url=postgres_url)  # its first open makes the schema
    head = head_revision()
    assert status(gw) == (0, {"current": head, "head": head, "state": "current"})
    set_revision(postgres_url, OLDER)
    assert status(gw) == (1, {"current": OLDER, "head": head, "state": "behind"})

    refused = gw.cli("serve", check=False)
    assert refused.returncode == 1
    assert f"revision {OLDER}" in refused.stderr and f"needs revision {head}" in refused.stderr
    assert "`phigate db upgrade -c FILE`" in refused.stderr
    listing = gw.cli("principal", "ls", check=False)  # any command: none migrates it
    assert listing.returncode == 1 and "phigate db upgrade" in listing.stderr
    assert status(gw)[1]["current"] == OLDER

    upgraded = gw.cli("db", "upgrade")
    assert (
        upgraded.stdout.strip() == f"upgraded the schema from revision {OLDER} to revision {head}"
    )
    again = gw.cli("db", "upgrade")
    assert again.stdout.strip() == f"the schema is at revision {head} already; nothing to do"
    assert status(gw)[0] == 0
    assert gw.cli("principal", "ls").returncode == 0


def test_a_schema_newer_than_the_code_is_refused_and_left_alone(
    tmp_path: Path, postgres_url: str
) -> None:
    gw = Phigate(tmp_path, database_url=postgres_url)
    set_revision(postgres_url, "9999")
    assert status(gw) == (1, {"current": "9999", "head": head_revision(), "state": "ahead"})
    for args in (("serve",), ("db", "upgrade")):
        refused = gw.cli(*args, check=False)
        assert refused.returncode == 1
        assert "revision 9999, newer than this version of phigate knows" in refused.stderr
    assert status(gw)[1]["current"] == "9999"


def test_upgrades_at_once_take_turns(postgres_url: str) -> None:
    """Nodes starting together on an empty database: one creates the schema."""
    results: list[object] = []

    def upgrade() -> None:
        db = Database(postgres_url)
        try:
            results.append(db.migrate().current)
        except Exception as exc:  # reported by the assertion below
            results.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(map(str, results)) == sorted([str(None), head_revision(), head_revision()])


def test_the_embedded_store_upgrades_itself(tmp_path: Path) -> None:
    gw = Phigate(tmp_path)
    url = f"sqlite:///{gw.db_path}"
    set_revision(url, OLDER)
    assert gw.cli("principal", "ls").returncode == 0  # opening it upgraded it
    assert status(gw)[1]["state"] == "current"
    set_revision(url, "9999")
    refused = gw.cli("principal", "ls", check=False)
    assert refused.returncode == 1 and "newer than this version" in refused.stderr


def test_status_of_an_empty_database(tmp_path: Path, postgres_url: str) -> None:
    config = tmp_path / "phigate.yaml"
    config.write_text(f"data_dir: {tmp_path}\ndatabase_url: {postgres_url}\n")
    shown = subprocess.run(
        [*PHIGATE, "db", "status", "-c", str(config)], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 1
    assert "schema revision: none (empty database)" in shown.stdout
    assert "behind: run `phigate db upgrade`" in shown.stdout
