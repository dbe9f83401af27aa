"""The nodes sharing the database: registered at start, heartbeats, a mark at a
clean stop; the policy each of their processes runs, and reloads asked of all.

Only people read the node rows (`phigate nodes ls`, `phigate policy reload`).
Who may claim a job is decided by the queue's leases alone, never by these
rows: a node that stops beating loses its jobs when their leases expire,
whatever this table says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from gateway.store.schema import nodes, policy_reloads, policy_states
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
    long_ago = node.started_at - _KEEP_STOPPED_SECONDS
    conn.execute(delete(nodes).where(nodes.c.stopped_at < long_ago))
    conn.execute(delete(policy_states).where(policy_states.c.beat_at < long_ago))


@dataclass(frozen=True)
class PolicyState:
    """The policy one server process runs, as it last reported."""

    node: str
    pid: int
    version: str
    loaded_at: float
    checked_at: float  # when its last load or reload attempt ended
    error: str | None  # that attempt's problems; None if it worked
    reload_id: int  # the last reload asked through the database it acted on (0: none)


def beat(conn: Connection, name: str, now: float, policy: PolicyState) -> None:
    """A process's heartbeat: its node is live, and this is the policy it runs."""
    conn.execute(update(nodes).where(nodes.c.name == name).values(heartbeat_at=now))
    values = {
        "version": policy.version,
        "loaded_at": policy.loaded_at,
        "checked_at": policy.checked_at,
        "error": policy.error,
        "reload_id": policy.reload_id,
        "beat_at": now,
    }
    upsert = on_conflict_insert(conn, policy_states).values(node=name, pid=policy.pid, **values)
    conn.execute(upsert.on_conflict_do_update(index_elements=["node", "pid"], set_=values))


def stopped(conn: Connection, name: str, now: float) -> None:
    conn.execute(update(nodes).where(nodes.c.name == name).values(stopped_at=now))
    conn.execute(delete(policy_states).where(policy_states.c.node == name))


def ask_reload(conn: Connection, requested_by: str, version: str, now: float) -> int:
    """Ask every node to load its policy again; the request's id."""
    row = conn.execute(
        insert(policy_reloads)
        .values(requested_at=now, requested_by=requested_by, version=version)
        .returning(policy_reloads.c.id)
    ).one()
    return int(row.id)


def latest_reload(conn: Connection) -> int:
    """The id of the newest reload asked (0: none yet)."""
    return int(conn.execute(select(func.coalesce(func.max(policy_reloads.c.id), 0))).scalar_one())


def running_policies(conn: Connection, now: float) -> list[PolicyState]:
    """The policy of every process of every live node, by node and pid."""
    live = and_(
        nodes.c.stopped_at.is_(None),
        policy_states.c.beat_at >= now - STALE_BEATS * nodes.c.heartbeat_seconds,
    )
    rows = conn.execute(
        select(policy_states)
        .join(nodes, nodes.c.name == policy_states.c.node)
        .where(live)
        .order_by(policy_states.c.node, policy_states.c.pid)
    )
    return [
        PolicyState(
            node=row.node,
            pid=row.pid,
            version=row.version,
            loaded_at=row.loaded_at,
            checked_at=row.checked_at,
            error=row.error,
            reload_id=row.reload_id,
        )
        for row in rows
    ]


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
