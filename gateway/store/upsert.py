"""INSERT ... ON CONFLICT, the one statement SQLite and PostgreSQL spell alike
but SQLAlchemy builds per dialect."""

from __future__ import annotations

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def dialect_insert(dialect: str, table: Table) -> sqlite.Insert | postgresql.Insert:
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise RuntimeError(f"phigate's store needs SQLite or PostgreSQL, not {dialect}")


def on_conflict_insert(conn: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that can take ON CONFLICT on the connection's database."""
    return dialect_insert(conn.dialect.name, table)
