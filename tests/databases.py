"""Empty databases for tests: SQLite in a temporary directory, or PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from needed import unavailable
from private_postgres import PrivatePostgres, missing_binaries, running_postgres
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

# The server tests that need PostgreSQL use: the one PHIGATE_TEST_POSTGRES names, or
# the one a developer's machine runs.
POSTGRES = os.environ.get("PHIGATE_TEST_POSTGRES") or "postgresql+psycopg://postgres@127.0.0.1:5432"


def postgres_reachable() -> None:
    """Fail, or skip off the test command, where no PostgreSQL runs (see needed.py)."""
    try:
        engine = create_engine(f"{POSTGRES}/postgres")
        with engine.connect():
            pass
        engine.dispose()
    except (ImportError, OperationalError) as exc:
        unavailable(f"PostgreSQL at {POSTGRES} is not usable: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def fresh_database(tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: SQLite in tmp_path, or, when
    PHIGATE_TEST_POSTGRES names a server (postgresql+psycopg://USER@HOST:PORT),
    a new database there, dropped afterwards."""
    server = os.environ.get("PHIGATE_TEST_POSTGRES")
    if not server:
        yield f"sqlite:///{tmp_path / 'phigate.db'}"
        return
    name = f"phigate_test_{secrets.token_hex(6)}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield f"{server}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own (tests/private_postgres.py), started, and
    stopped and removed afterwards; fails or skips where it cannot run (see needed.py)."""
    missing = missing_binaries()
    if missing is not None:
        unavailable(missing)
    with running_postgres() as server:
        yield server
