"""Empty databases for tests: SQLite in a temporary directory, or PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine


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
