"""Fixtures shared by the test files: a migrated store, a keyring, one pattern database cache."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import drop_server_databases, fresh_database

from gateway.config import InspectionConfig
from gateway.inspect.detect import dbcache
from gateway.inspect.detect.scan import compiled_for
from gateway.store.audit_key import AuditKey
from gateway.store.database import Database
from gateway.store.keyring import Keyring

CACHE_ENV = "PHIGATE_TEST_CACHE_DIR"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of a store (the `database_url` fixture) is database-dependent: the
    test command runs the `store` tests once more on PostgreSQL (databases.py)."""
    for item in items:
        if "database_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.store)


def pytest_sessionfinish() -> None:
    drop_server_databases()


@pytest.fixture(scope="session", autouse=True)
def detector_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One directory of compiled pattern databases for the whole run: the first server
    (or in-process engine) compiles, every later one loads (see harness.settings_for).
    Workers of `pytest -n` share it (each file is written whole, then renamed into place):
    their temporary directories are popen-gwN under the run's."""
    run_root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_root = run_root.parent
    directory = run_root / "detector-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(directory))
        dbcache.use_directory(directory)
        # The default patterns, which most servers and commands use, compiled once before
        # any test: one worker compiles while the other waits, then loads.
        with (run_root / "detector-cache.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            compiled_for(InspectionConfig())
        yield directory
        dbcache.use_directory(None)


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """SQLite, or PostgreSQL in the run on PostgreSQL (databases.py).

    A test file that reads the SQLite file itself overrides this fixture.
    """
    with fresh_database(tmp_path) as url:
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated, empty store with its writer running and a fresh audit key."""
    database = Database(database_url, audit_key=AuditKey(os.urandom(32)))
    database.migrate()
    database.start()
    yield database
    database.close()


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return Keyring.create(tmp_path / "keys")
