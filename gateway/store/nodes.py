"""The nodes sharing the database: registered at start, heartbeats, a mark at a clean stop.

Only `phigate nodes ls` reads them. Who may claim a job is decided by the
queue's leases alone, never by these rows: a node that stops beating loses
its jobs when their leases expire, whatever this table says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, delete, select, update

from gateway.store.schema import nodes
from gateway.store.upsert import on_conflict_insert

# A node that has not beaten for this many of its intervals is shown as stale.
STALE_BEATS = 3
# Rows of nodes stopped longer ago than this are removed when a node starts.
_KEEP_STOPPED_SECONDS = 7 * 86400.0

NodeState = Literal["live", "stale", "stopped"]


@dataclass(frozen=True)
class Node:
    name: str
    roles: tuple[str, ...]
    version: str
    processes: int
    heartbeat_seconds: float
    started_at: float
    heartbeat_at: float
    stopped_at: float | None = None

    def state(self, now: float) -> NodeState:
        if self.stopped_at is not None:
            return "stopped"
        if now - self.heartbeat_at > STALE_BEATS * self.heartbeat_seconds:
            return "stale"
        return "live"


def register(conn: Connection, node: Node) -> None:
    """Record a starting node (a configured name starts again in its own row)."""
    values = {
        "name": node.name,
        "roles": ",".join(node.roles),
        "version": node.version,
        "processes": node.processes,
        "heartbeat_seconds": node.heartbeat_seconds,
        "started_at": node.started_at,
        "heartbeat_at": node.heartbeat_at,
        "stopped_at": None,
    }
    insert = on_conflict_insert(conn, nodes).values(values)
    conn.execute(insert.on_conflict_do_update(index_elements=["name"], set_=values))
    conn.execute(delete(nodes).where(nodes.c.stopped_at < node.started_at - _KEEP_STOPPED_SECONDS))


def beat(conn: Connection, name: str, now: float) -> None:
    conn.execute(update(nodes).where(nodes.c.name == name).values(heartbeat_at=now))


def stopped(conn: Connection, name: str, now: float) -> None:
    conn.execute(update(nodes).where(nodes.c.name == name).values(stopped_at=now))


def listed(conn: Connection) -> list[Node]:
    """Every recorded node, the most recently started first."""
    rows = conn.execute(select(nodes).order_by(nodes.c.started_at.desc(), nodes.c.name))
    return [
        Node(
            name=row.name,
            roles=tuple(row.roles.split(",")),
            version=row.version,
            processes=row.processes,
            heartbeat_seconds=row.heartbeat_seconds,
            started_at=row.started_at,
            heartbeat_at=row.heartbeat_at,
            stopped_at=row.stopped_at,
        )
        for row in rows
    ]
