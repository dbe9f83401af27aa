"""Two phigate nodes behind HAProxy, which speaks the PROXY protocol to them.

Debian's haproxy runs in the foreground on loopback ports in front of two
`phigate serve` nodes that share nothing: `send-proxy` (v1) and
`send-proxy-v2` to the STARTTLS listener, `send-proxy-v2` to the implicit-TLS
one, with SMTP health checks. Clients connect from loopback aliases
(127.0.0.2, 127.0.0.3); HAProxy connects from 127.0.0.1. The nodes must see
the clients' addresses everywhere: audit trail, Received: field, connection
limits, AUTH lockouts and relay networks.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import re
import shutil
import smtplib
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import (
    Phigate,
    RawClient,
    Sink,
    audit_mark,
    audit_since,
    free_port,
    insecure_context,
    message,
    via_sink,
    wait_until,
)

from gateway.smtp.proxy_protocol import V2_SIGNATURE

DOMAIN = "clinic.example.org"
SENDER = f"ehr@{DOMAIN}"
RECIPIENT = "dr@partner.test"
BALANCER = "127.0.0.1"  # where HAProxy connects from
CLIENT_A, CLIENT_B = "127.0.0.2", "127.0.0.3"  # CLIENT_B is a relay network
UNTRUSTED = "127.0.0.5"
PER_CLIENT = 3  # limits.max_connections_per_ip of every listener
HEADER_TIMEOUT = 1.0
CANARY = "CANARY-7c1d-PROXY"


@dataclass
class Node:
    gw: Phigate
    submission: int
    smtps: int


@dataclass
class Cluster:
    nodes: list[Node]
    sink: Sink
    # HAProxy's frontends: v1 and v2 to the submission listeners of both nodes,
    # v2 to both smtps listeners, and v2 to node 0's submission listener alone.
    v1: int
    v2: int
    smtps: int
    node0: int
    secrets: dict[str, str]
    stats: Path


def _node(tmp: Path, sink: Sink, processes: int) -> Node:
    tmp.mkdir()
    submission, smtps = free_port(), free_port()

    def proxy() -> dict[str, Any]:  # one for each listener: the settings file has no anchors
        return {"trusted": [f"{BALANCER}/32"], "header_timeout": HEADER_TIMEOUT}

    listeners: list[dict[str, Any]] = [
        {
            "name": "submission",
            "address": f"127.0.0.1:{submission}",
            "tls": "starttls",
            "allow_networks_without_auth": True,
            "proxy_protocol": proxy(),
        },
        {
            "name": "smtps",
            "address": f"127.0.0.1:{smtps}",
            "tls": "implicit",
            "proxy_protocol": proxy(),
        },
    ]
    gw = Phigate(
        tmp,
        listeners=listeners,
        delivery=via_sink(sink, poll_interval=0.2),
        # Pre-forked processes take turns accepting from the one socket.
        processes=processes,
        received_header={"include_client_ip": True},
        metrics={"enabled": True, "address": f"127.0.0.1:{free_port()}"},
        # The balancer's own address is a relay network too: its health checks
        # must still never relay.
        relay_networks=[
            {"name": "ehr", "networks": [f"{CLIENT_B}/32", f"{BALANCER}/32"], "domains": [DOMAIN]}
        ],
        limits={
            "max_connections_per_ip": PER_CLIENT,
            "auth_lockout_after": 3,
            "auth_backoff_base": 0.0,
            "auth_backoff_max": 0.0,
        },
    )
    return Node(gw, submission, smtps)


def _share_principal(nodes: list[Node], name: str) -> str:
    """One principal with one secret on every node (they share no database)."""
    secret = nodes[0].gw.add_principal(name, DOMAIN)
    with contextlib.closing(sqlite3.connect(nodes[0].gw.db_path)) as first:
        (hashed,) = first.execute(
            "SELECT secret_hash FROM principals WHERE name = ?", (name,)
        ).fetchone()
    for node in nodes[1:]:
        node.gw.add_principal(name, DOMAIN)
        with contextlib.closing(sqlite3.connect(node.gw.db_path)) as other:
            other.execute("UPDATE principals SET secret_hash = ? WHERE name = ?", (hashed, name))
            other.commit()
    return secret


def _stopped_cleanly(node: Node) -> None:
    """SIGTERM: the PROXY listeners close and the node exits 0."""
    assert node.gw.stop() == 0, node.gw.log_text()[-2000:]


def _haproxy_config(cluster_ports: dict[str, int], nodes: list[Node], stats: Path) -> str:
    def servers(port_of: str, proxy: str, checks: bool) -> str:
        lines = []
        for index, node in enumerate(nodes):
            port = getattr(node, port_of)
            line = f"    server node{index} 127.0.0.1:{port} {proxy}"
            if checks:
                line += " check check-send-proxy inter 1s fall 2 rise 1"
                if port_of == "smtps":
                    line += " check-ssl verify none"
            lines.append(line)
        return "\n".join(lines)

    return f"""\
global
    stats socket {stats} mode 600 level admin

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend smtp_v1
    bind 127.0.0.1:{cluster_ports["v1"]}
    default_backend submission_v1

frontend smtp_v2
    bind 127.0.0.1:{cluster_ports["v2"]}
    default_backend submission_v2

frontend smtps_v2
    bind 127.0.0.1:{cluster_ports["smtps"]}
    default_backend smtps_v2

frontend smtp_node0
    bind 127.0.0.1:{cluster_ports["node0"]}
    default_backend node0

backend submission_v1
    balance roundrobin
    option smtpchk EHLO haproxy.test
{servers("submission", "send-proxy", True)}

backend submission_v2
    balance roundrobin
    option smtpchk EHLO haproxy.test
{servers("submission", "send-proxy-v2", True)}

backend smtps_v2
    balance roundrobin
    option smtpchk EHLO haproxy.test
{servers("smtps", "send-proxy-v2", True)}

backend node0
    server node0 127.0.0.1:{nodes[0].submission} send-proxy-v2
"""


def _server_states(stats: Path) -> dict[tuple[str, str], str]:
    """(backend, server) -> status (UP, DOWN, ...) from HAProxy's stats socket."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(stats))
        sock.sendall(b"show stat\n")
        text = b""
        while chunk := sock.recv(65536):
            text += chunk
    rows = csv.DictReader(text.decode().lstrip("# ").splitlines())
    return {
        (row["pxname"], row["svname"]): row["status"]
        for row in rows
        if row["svname"] not in ("FRONTEND", "BACKEND")
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    assert shutil.which("haproxy"), "haproxy is missing: apt-get install haproxy (scripts/test)"
    tmp = tmp_path_factory.mktemp("cluster")
    with Sink() as sink, contextlib.ExitStack() as stack:
        nodes = [_node(tmp / f"node{i}", sink, processes=i + 1) for i in range(2)]
        secrets = {name: _share_principal(nodes, name) for name in ("ehr", "billing")}
        for node in nodes:
            node.gw.start()
            stack.callback(_stopped_cleanly, node)
        ports = {name: free_port() for name in ("v1", "v2", "smtps", "node0")}
        stats = tmp / "haproxy.sock"
        config = tmp / "haproxy.cfg"
        config.write_text(_haproxy_config(ports, nodes, stats))
        log = (tmp / "haproxy.log").open("wb")
        haproxy = subprocess.Popen(
            ["haproxy", "-f", str(config), "-db"], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            # Every checked server up: the health checks pass through the PROXY protocol.
            wait_until(
                lambda: (
                    stats.exists()
                    and sorted(_server_states(stats).values()) == ["UP"] * 6 + ["no check"]
                ),
                30,
                0.2,
            )
            yield Cluster(nodes, sink, **ports, secrets=secrets, stats=stats)
        finally:
            haproxy.terminate()
            haproxy.wait(10)
            log.close()


def _client(port: int, source: str) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=15, source_address=(source, 0))
    smtp.starttls(context=insecure_context())
    smtp.ehlo()
    return smtp


def _send(smtp: smtplib.SMTP, subject: str) -> None:
    with smtp:
        smtp.sendmail(SENDER, [RECIPIENT], message(SENDER, RECIPIENT, subject, "hello"))


def _client_ips(node: Node, mark: int) -> set[str]:
    return {e["client_ip"] for e in audit_since(node.gw, mark) if e["client_ip"]}


def test_the_nodes_see_each_client_by_its_own_address(cluster: Cluster) -> None:
    marks = [audit_mark(node.gw) for node in cluster.nodes]
    before = len(cluster.sink.messages)
    # Round robin: of each pair, one message goes to each node.
    for port, source, kind in [
        (cluster.v1, CLIENT_A, "v1"),
        (cluster.v1, CLIENT_A, "v1"),
        (cluster.v2, CLIENT_B, "v2"),
        (cluster.v2, CLIENT_B, "v2"),
    ]:
        smtp = _client(port, source)
        smtp.login("ehr", cluster.secrets["ehr"])
        _send(smtp, f"{kind} from {source}")
    for _ in range(2):  # implicit TLS: the header comes before the handshake
        smtps = smtplib.SMTP_SSL(
            "127.0.0.1",
            cluster.smtps,
            timeout=15,
            context=insecure_context(),
            source_address=(CLIENT_A, 0),
        )
        smtps.login("ehr", cluster.secrets["ehr"])
        _send(smtps, f"smtps from {CLIENT_A}")
    received = cluster.sink.wait_for(before + 6)[before:]
    origins = [re.search(rb"^Received: from \(\[([^]]+)\]\)", r.content, re.M) for r in received]
    assert sorted(m.group(1).decode() for m in origins if m) == [CLIENT_A] * 4 + [CLIENT_B] * 2
    for node, mark in zip(cluster.nodes, marks, strict=True):
        events = audit_since(node.gw, mark)
        # Every node got mail, and knows its senders only by their own addresses.
        assert [e for e in events if e["event"] == "auth" and e["result"] == "ok"]
        assert _client_ips(node, mark) == {CLIENT_A, CLIENT_B}


def test_a_client_over_its_limit_is_refused_by_its_own_address(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    mark = audit_mark(node.gw)
    with contextlib.ExitStack() as stack:
        held = [
            stack.enter_context(contextlib.closing(RawClient(cluster.node0, CLIENT_A)))
            for _ in range(PER_CLIENT)
        ]
        assert all(c.reply().startswith(b"220 ") for c in held)
        over = RawClient(cluster.node0, CLIENT_A)
        assert (
            over.reply() == b"421 4.7.0 too many connections from your address; try again later\r\n"
        )
        over.close()
        # Another client behind the same balancer is welcome.
        other = stack.enter_context(contextlib.closing(RawClient(cluster.node0, CLIENT_B)))
        assert other.reply().startswith(b"220 ")
        wait_until(lambda: bool(audit_since(node.gw, mark)))
    refusals = [e for e in audit_since(node.gw, mark) if e["result"] == "connect"]
    assert [(e["code"], e["client_ip"]) for e in refusals] == [(421, CLIENT_A)]


def _login(smtp: smtplib.SMTP, user: str, secret: str) -> int:
    """AUTH PLAIN once (smtplib's login would go on to other mechanisms); the reply code."""
    smtp.user, smtp.password = user, secret
    try:
        return smtp.auth("PLAIN", smtp.auth_plain)[0]
    except smtplib.SMTPAuthenticationError as exc:
        return exc.smtp_code


def test_auth_lockout_locks_out_the_client_not_the_balancer(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    mark = audit_mark(node.gw)
    for _ in range(3):  # limits.auth_lockout_after
        with _client(cluster.node0, CLIENT_A) as smtp:
            assert _login(smtp, "billing", "wrong secret") == 535
    with _client(cluster.node0, CLIENT_A) as smtp:
        assert _login(smtp, "billing", cluster.secrets["billing"]) == 454
    # The same principal from another client, through the same balancer.
    with _client(cluster.node0, CLIENT_B) as smtp:
        assert _login(smtp, "billing", cluster.secrets["billing"]) == 235
    events = audit_since(node.gw, mark)
    results = [(e["result"], e["client_ip"]) for e in events if e["event"] == "auth"]
    assert results == [("failed", CLIENT_A)] * 3 + [("locked", CLIENT_A), ("ok", CLIENT_B)]


def test_relay_networks_are_matched_by_the_client_address(cluster: Cluster) -> None:
    before = len(cluster.sink.messages)
    with _client(cluster.node0, CLIENT_B) as smtp:  # a relay network: no AUTH
        smtp.sendmail(SENDER, [RECIPIENT], message(SENDER, RECIPIENT, "relayed", "hello"))
    cluster.sink.wait_for(before + 1)
    with _client(cluster.node0, CLIENT_A) as smtp:
        code, reply = smtp.mail(SENDER)
        assert (code, reply[:5]) == (530, b"5.7.0")


def _direct(node: Node, source: str) -> socket.socket:
    """A connection to node 0's submission listener without the balancer."""
    return socket.create_connection(
        ("127.0.0.1", node.submission), timeout=10, source_address=(source, 0)
    )


def test_the_balancers_own_connection_is_served_but_never_relays(cluster: Cluster) -> None:
    """v2 LOCAL and v1 UNKNOWN (health checks), by hand: served as the balancer, which is in
    relay_networks here and must log in all the same."""
    node = cluster.nodes[0]
    for header in (V2_SIGNATURE + b"\x20\x00\x00\x00", b"PROXY UNKNOWN\r\n"):
        sock = _direct(node, BALANCER)
        sock.sendall(header)
        smtp = smtplib.SMTP(timeout=10)
        smtp.sock, smtp._host = sock, "127.0.0.1"  # as connect() would have set them
        assert smtp.getreply()[0] == 220
        with smtp:
            smtp.starttls(context=insecure_context())
            smtp.ehlo()
            code, reply = smtp.mail(SENDER)
            assert (code, reply) == (530, b"5.7.0 Authentication required (AUTH over TLS)")


def _proxy_headers(node: Node) -> dict[str, float]:
    """phigate_smtp_proxy_headers_total of the submission listener, by result."""
    address = node.gw.settings["metrics"]["address"]
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    counted: dict[str, float] = collections.defaultdict(float)
    for line in text.splitlines():
        found = re.match(
            r'phigate_smtp_proxy_headers_total\{listener="submission",result="(\w+)"\} (\S+)', line
        )
        if found:
            counted[found.group(1)] = float(found.group(2))
    return counted


def _closed_without_a_word(sock: socket.socket) -> bool:
    """The server closed: at once with an empty read, or with a reset where it left bytes unread."""
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def test_direct_connections_are_closed_without_a_greeting(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    mark = audit_mark(node.gw)
    # From an address that is not a trusted balancer: closed at once.
    started = time.monotonic()
    with contextlib.closing(_direct(node, UNTRUSTED)) as sock:
        assert _closed_without_a_word(sock)
    assert time.monotonic() - started < HEADER_TIMEOUT
    # From the balancer's address, but no header: closed at the header timeout.
    started = time.monotonic()
    with contextlib.closing(_direct(node, BALANCER)) as sock:
        assert _closed_without_a_word(sock)
    assert HEADER_TIMEOUT * 0.9 <= time.monotonic() - started < HEADER_TIMEOUT + 3
    # A malformed header: closed at once, and its bytes are nowhere.
    for garbage in (
        f"PROXY TCP4 {CANARY} 127.0.0.1 1 25\r\n".encode(),
        V2_SIGNATURE + b"\x21\x11\x00\x08" + CANARY.encode()[:8],  # TCP4 in 8 bytes
        f"EHLO {CANARY}\r\n".encode(),
    ):
        with contextlib.closing(_direct(node, BALANCER)) as sock:
            sock.sendall(garbage)
            assert _closed_without_a_word(sock)
    wait_until(lambda: len(_client_ips(node, mark)) == 2)
    refused = [e for e in audit_since(node.gw, mark) if e["event"] == "refused"]
    # Audited once a minute per address, with a count: one row each here.
    assert [(e["result"], e["code"], e["client_ip"]) for e in refused] == [
        ("connect", None, UNTRUSTED),
        ("connect", None, BALANCER),
    ]
    assert "not a trusted load balancer" in refused[0]["detail"]
    assert "no PROXY protocol header within 1 s" in refused[1]["detail"]
    logged = [e for e in node.gw.log_events() if e.get("event") == "proxy_refused"]
    assert {(e["reason"], e["client_ip"]) for e in logged} >= {
        ("untrusted", UNTRUSTED),
        ("timeout", BALANCER),
    }
    counted = _proxy_headers(node)
    assert counted["untrusted"] == 1 and counted["timeout"] == 1 and counted["malformed"] == 3
    assert counted["client"] > 0 and counted["local"] > 0  # health checks: v2 LOCAL
    assert CANARY not in node.gw.log_text()
    assert CANARY.encode() not in node.gw.db_path.read_bytes()
    # Nothing of it reached a session: no traceback either.
    assert "Traceback" not in node.gw.log_text()


def test_the_config_is_checked_for_networks(tmp_path: Path) -> None:
    gw = Phigate(tmp_path)
    gw.settings["listeners"][0]["proxy_protocol"] = {"trusted": ["10.0.5.300/32"]}
    gw.config.write_text(yaml.safe_dump(gw.settings))
    result = gw.cli("principal", "ls", check=False)
    assert result.returncode != 0
    assert "proxy_protocol" in result.stderr and "10.0.5.300/32" in result.stderr
