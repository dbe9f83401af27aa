"""Empty databases for tests: SQLite in a temporary directory, or PostgreSQL.

The suite runs on SQLite, the embedded default. The test command then runs the
database-dependent tests (marker `store`: every test of the `database_url`
fixture, and server tests marked so) once more with PHIGATE_TEST_DATABASE=postgresql,
on the PostgreSQL server PHIGATE_TEST_POSTGRES names. Tests of several nodes on one
database use PostgreSQL always (`postgres_database`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from needed import unavailable
from sqlalchemy import Connection, create_engine
from sqlalchemy.exc import OperationalError

from gateway.store.database import migrate

if TYPE_CHECKING:
    from private_postgres import PrivatePostgres

# The PostgreSQL server: the one PHIGATE_TEST_POSTGRES names, or the one a developer's
# machine runs.
POSTGRES = os.environ.get("PHIGATE_TEST_POSTGRES") or "postgresql+psycopg://postgres@127.0.0.1:5432"
# Where database-dependent tests keep their store in this run.
ON_POSTGRES = os.environ.get("PHIGATE_TEST_DATABASE") == "postgresql"

_created: list[str] = []  # databases made for servers, dropped at the end of the run


def postgres_reachable() -> None:
    """Fail, or skip off the test command, where no PostgreSQL runs (see needed.py)."""
    try:
        engine = create_engine(f"{POSTGRES}/postgres")
        with engine.connect():
            pass
        engine.dispose()
    except (ImportError, OperationalError) as exc:
        unavailable(f"PostgreSQL at {POSTGRES} is not usable: {type(exc).__name__}: {exc}")


_template: list[str] = []  # this process's migrated template, made at its first use


def _create(migrated: bool = True) -> str:
    """A new database; `migrated`: a copy of a template at the code's schema, which
    is quicker than running every migration again (the code migrates it to nothing)."""
    name = f"phigate_test_{secrets.token_hex(6)}"
    with _admin() as conn:
        if not migrated:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
            return name
        if not _template:
            template = f"phigate_template_{secrets.token_hex(6)}"
            conn.exec_driver_sql(f"CREATE DATABASE {template}")
            _created.append(template)
            migrator = create_engine(f"{POSTGRES}/{template}")
            try:
                migrate(migrator)
            finally:
                migrator.dispose()
            _template.append(template)
        conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE {_template[0]}")
    return name


def _drop(names: list[str]) -> None:
    with _admin() as conn:
        for name in names:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def _admin() -> Iterator[Connection]:
    admin = create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            yield conn
    finally:
        admin.dispose()


@contextlib.contextmanager
def fresh_database(
    tmp_path: Path, postgres: bool = ON_POSTGRES, migrated: bool = True
) -> Iterator[str]:
    """A URL of a database without data: SQLite in tmp_path (empty), or a new
    PostgreSQL database (dropped afterwards) when this run is on PostgreSQL or
    `postgres` asks for it, at the code's schema unless not `migrated`."""
    if not postgres:
        yield f"sqlite:///{tmp_path / 'phigate.db'}"
        return
    name = _create(migrated)
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        _drop([name])


@contextlib.contextmanager
def postgres_database(tmp_path: Path) -> Iterator[str]:
    """A new, empty PostgreSQL database, in every run (several nodes share one)."""
    postgres_reachable()
    with fresh_database(tmp_path, postgres=True, migrated=False) as url:
        yield url


def server_database() -> str | None:
    """The database_url of a test server on this run's backend: None on SQLite (the
    server's data directory), else a new PostgreSQL database, dropped by
    `drop_server_databases` at the end of the run."""
    if not ON_POSTGRES:
        return None
    name = _create()
    _created.append(name)
    return f"{POSTGRES}/{name}"


def drop_server_databases() -> None:
    """Drop the servers' databases and the template."""
    if _created:
        _drop(_created)
        _created.clear()
    _template.clear()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own (tests/private_postgres.py), started, and
    stopped and removed afterwards; fails or skips where it cannot run (see needed.py)."""
    # Here, not at the top: private_postgres uses the harness, which uses this module.
    from private_postgres import missing_binaries, running_postgres

    missing = missing_binaries()
    if missing is not None:
        unavailable(missing)
    with running_postgres() as server:
        yield server
