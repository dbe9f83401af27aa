"""`phigate nodes ls`: the servers sharing the database, their roles and heartbeats."""

from __future__ import annotations

import time

import click

from gateway.cli.common import cli_settings, config_options, open_store, print_json, when


@click.group("nodes")
def nodes_group() -> None:
    """The phigate nodes that share this database (docs/scale-out.md)."""


@nodes_group.command("ls")
@config_options
@click.option("--all", "everything", is_flag=True, help="Also nodes that stopped cleanly.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list, for scripts.")
def ls(config_file: str | None, data_dir: str | None, everything: bool, as_json: bool) -> None:
    """List the running nodes: name, state, roles, version, policy, last heartbeat.

    A node is live while it beats (every node.heartbeat_seconds), stale once
    it has missed three beats (killed, hung, cut off from the database: its
    jobs go to the other nodes when their leases expire) and stopped after a
    clean shutdown (shown with --all).

    \b
    Example:
      phigate nodes ls -c /etc/phigate/phigate.yaml
      NAME  STATE  ROLES     VERSION  POLICY            STARTED              LAST HEARTBEAT
      mx1   live   smtp,web  0.2.0    6f1c2a9e0b7d4e11  2026-12-05 09:00:01  2s ago

    POLICY is the policy version its processes run (`phigate policy reload`
    loads the policy again on every node).
    """
    settings = cli_settings(config_file, data_dir)
    from gateway.store import nodes

    with open_store(settings) as db, db.reading() as conn:
        listed = nodes.listed(conn)
        now = time.time()
        policies: dict[str, set[str]] = {}
        for state in nodes.running_policies(conn, now):
            policies.setdefault(state.node, set()).add(state.version)
    shown = [node for node in listed if everything or node.state(now) != "stopped"]
    if as_json:
        print_json(
            [
                {
                    "name": node.name,
                    "state": node.state(now),
                    "roles": list(node.roles),
                    "version": node.version,
                    "processes": node.processes,
                    "policy_versions": sorted(policies.get(node.name, ())),
                    "started_at": node.started_at,
                    "heartbeat_at": node.heartbeat_at,
                    "seconds_since_heartbeat": round(now - node.heartbeat_at, 1),
                    "stopped_at": node.stopped_at,
                }
                for node in shown
            ]
        )
        return
    if not shown:
        click.echo("no running nodes" + ("" if everything else " (--all shows stopped ones)"))
        return
    header = ("NAME", "STATE", "ROLES", "VERSION", "POLICY", "STARTED", "LAST HEARTBEAT")
    rows = [
        (
            node.name,
            node.state(now),
            ",".join(node.roles),
            node.version,
            ",".join(sorted(policies.get(node.name, ()))) or "-",
            when(node.started_at),
            f"{now - node.heartbeat_at:.0f}s ago",
        )
        for node in shown
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
