"""Three phigate nodes on one PostgreSQL database, each with its roles: mail taken in
by the SMTP nodes is delivered by the delivery nodes; one is killed (SIGKILL) while
delivering, and its jobs are delivered by another once their leases expire: nothing
is lost, and only deliveries in flight at the kill arrive twice. Failed AUTH counts
on every node."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import shutil
import smtplib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.smtp import SMTP, Envelope, Session
from databases import postgres_database
from harness import (
    Phigate,
    Sink,
    SinkHandler,
    message,
    run_without_settings,
    tls_client,
    via_sink,
    wait_until,
)

from gateway.config import LimitsConfig
from gateway.smtp.auth import AuthGuard
from gateway.store.database import Database

MESSAGES = 300
WORKERS = 4
LEASE = 4.0
HEARTBEAT = 1.0
SENDER = "ehr@clinic.example.org"


class SlowSink(SinkHandler):
    """Records who delivered each message (the node's EHLO name) and holds every DATA
    a moment, so that a node always has deliveries in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries: list[tuple[str, str]] = []  # (Message-ID, EHLO name)
        self.in_data: Counter[str] = Counter()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        helo = session.host_name or ""
        with self.lock:
            self.in_data[helo] += 1
        try:
            await asyncio.sleep(0.1)
        finally:
            with self.lock:
                self.in_data[helo] -= 1
        found = re.search(rb"Message-ID: <([^>]+)>", bytes(envelope.original_content or b""))
        with self.lock:
            self.deliveries.append((found.group(1).decode() if found else "", helo))
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with postgres_database(tmp_path) as url:
        yield url


def node(tmp: Path, name: str, url: str, sink: Sink, keys_from: Phigate | None) -> Phigate:
    """A node's own data dir, sharing the database and (copied) the first node's keys."""
    (tmp / name).mkdir()
    if keys_from is not None:
        shutil.copytree(keys_from.dir / "data" / "keys", tmp / name / "data" / "keys")
    return Phigate(
        tmp / name,
        database_url=url,
        hostname=f"{name}.phigate.test",
        delivery=via_sink(sink, workers=WORKERS, lease_seconds=LEASE),
        node={"name": name, "heartbeat_seconds": HEARTBEAT},
    )


def plain_auth(user: str, secret: str) -> str:
    return "PLAIN " + base64.b64encode(f"\0{user}\0{secret}".encode()).decode()


def submit_all(gw: Phigate, secret: str, ids: list[str], errors: list[BaseException]) -> None:
    try:
        client = gw.client("ehr1", secret)
        for message_id in ids:
            raw = message(SENDER, "dr@partner.test", "s", "b", message_id=f"<{message_id}>")
            client.sendmail(SENDER, ["dr@partner.test"], raw)
        client.quit()
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def states(gw: Phigate) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in gw.json("nodes", "ls", "--all")}


def started(running: contextlib.ExitStack, gw: Phigate, *serve_args: str) -> Phigate:
    running.callback(lambda: gw.proc is not None and gw.stop())
    return gw.start(*serve_args)


def test_a_node_killed_while_delivering_loses_nothing(tmp_path: Path, postgres_url: str) -> None:
    handler = SlowSink()
    with Sink(handler=handler) as sink:
        with contextlib.ExitStack() as running:
            # The first start makes the keys made at start (web, links, header
            # values): the others are given a copy of them all.
            a = started(
                running, node(tmp_path, "a", postgres_url, sink, None), "--role", "smtp,web"
            )
            b = started(running, node(tmp_path, "b", postgres_url, sink, a), "--role", "delivery")
            c = started(running, node(tmp_path, "c", postgres_url, sink, a))
            with pytest.raises(ConnectionRefusedError):  # a delivery node listens for no mail
                smtplib.SMTP("127.0.0.1", b.port, timeout=5)
            secret = a.add_principal("ehr1", "clinic.example.org")
            # A client guessing through the balancer, 3 times on a and twice on c, is
            # locked out on both (auth_lockout_after: 5), the right secret included.
            guesses = [(a, "wrong")] * 3 + [(c, "wrong")] * 2 + [(a, secret), (c, secret)]
            replies = []
            for gw, guess in guesses:
                with tls_client(gw.port, "127.0.0.2") as client:
                    replies.append(client.docmd("AUTH", plain_auth("ehr1", guess))[0])
            assert replies == [535] * 5 + [454, 454]
            ids = [f"m{n}@clinic.example.org" for n in range(MESSAGES)]
            errors: list[BaseException] = []
            senders = [
                threading.Thread(target=submit_all, args=(gw, secret, ids[i::2], errors))
                for i, gw in enumerate((a, c))
            ]
            began = time.monotonic()
            for thread in senders:
                thread.start()

            def b_mid_delivery() -> bool:
                with handler.lock:
                    return handler.in_data["b.phigate.test"] > 0 and len(handler.deliveries) > 30

            wait_until(b_mid_delivery, 30, 0.01)
            b.kill()
            killed_at = time.monotonic()
            for thread in senders:
                thread.join(60)
            assert errors == []

            wait_until(lambda: {i for i, _ in handler.deliveries} >= set(ids), 40, 0.1)
            took = time.monotonic() - began
            after_kill = time.monotonic() - killed_at
            counts = Counter(i for i, _ in handler.deliveries)
            twice = {i for i, n in counts.items() if n > 1}
            delivered_by = Counter(helo for _, helo in handler.deliveries)
            print(
                f"{MESSAGES} messages in {took:.1f} s, the last {after_kill:.1f} s after the "
                f"kill; delivered twice: {len(twice)}; by node: {dict(delivered_by)}"
            )
            assert set(counts) == set(ids)  # none lost, nothing else
            assert max(counts.values()) <= 2
            # Only what b had in flight: each of its workers sends one message at a time.
            assert len(twice) <= WORKERS
            first_by = {i: helo for i, helo in reversed(handler.deliveries)}
            assert all(first_by[i] == "b.phigate.test" for i in twice)
            assert delivered_by["a.phigate.test"] == 0  # an smtp node claims no job
            assert delivered_by["b.phigate.test"] > 0 and delivered_by["c.phigate.test"] > 0
            assert after_kill < LEASE + 30

            def b_is_stale() -> bool:
                shown = states(a)
                return shown["b"]["state"] == "stale" and shown["c"]["state"] == "live"

            wait_until(b_is_stale, 10, 0.5)
            shown = states(a)
            assert shown["a"]["roles"] == ["smtp", "web"]
            assert shown["b"]["roles"] == ["delivery"]
            assert shown["c"]["roles"] == ["smtp", "delivery", "web"]
            assert {n["version"] for n in shown.values()} == {shown["a"]["version"]}
        shown = states(a)  # a and c were stopped cleanly, b never said so
        assert {name: n["state"] for name, n in shown.items()} == {
            "a": "stopped",
            "b": "stale",
            "c": "stopped",
        }
        assert [n["name"] for n in a.json("nodes", "ls")] == ["b"]  # stopped ones need --all


def test_roles_are_named_or_refused() -> None:
    refused = run_without_settings("serve", "--role", "smtp,mail")
    assert refused.returncode == 2
    assert "'smtp,mail': give one or more of smtp, delivery, web" in refused.stderr
    twice = run_without_settings("serve", "--role", "smtp,smtp")
    assert twice.returncode == 2 and "each once" in twice.stderr


def test_auth_failures_on_any_node_lock_the_client_out_on_all(postgres_url: str) -> None:
    """Two nodes' guards (each its own engine on one PostgreSQL database) count a
    guessing client's failures together, also when they arrive at the same moment."""
    limits = LimitsConfig(auth_backoff_base=0, auth_lockout_after=6, auth_lockout_seconds=60)
    Database(postgres_url).migrate()
    nodes = [Database(postgres_url) for _ in range(2)]
    for db in nodes:
        db.start()
    one, two = (AuthGuard(limits, db=db) for db in nodes)

    async def scenario() -> None:
        await one.failure("ehr1", "10.0.0.1")
        await two.failure("ehr1", "10.0.0.1")
        assert not await one.locked("ehr1", "10.0.0.1")
        # Two at once on each node: none lost to the other's write.
        await asyncio.gather(*(g.failure("billing", "10.0.0.1") for g in (one, two, one, two)))
        for guard in (one, two):
            assert await guard.locked("ehr1", "10.0.0.1")
            assert await guard.locked("anyone", "10.0.0.1")  # the client, for every name
            assert not await guard.locked("ehr1", "10.0.0.2")  # not the principal elsewhere
        await two.failure("ehr1", "10.0.0.3")
        await one.success("ehr1", "10.0.0.3")  # a success forgets what did not lock...
        for _ in range(5):
            await two.failure("ehr1", "10.0.0.3")
        assert not await one.locked("ehr1", "10.0.0.3")  # ...so 5 more do not reach 6
        await one.failure("ehr1", "10.0.0.3")
        assert await two.locked("ehr1", "10.0.0.3")

    try:
        asyncio.run(scenario())
    finally:
        for db in nodes:
            db.close()


def test_a_node_of_several_processes_is_one_node(tmp_path: Path) -> None:
    """On the embedded store too: registered once by the supervisor, beaten by every
    process, marked stopped once the last one has ended."""
    gw = Phigate(tmp_path, processes=2, node={"heartbeat_seconds": HEARTBEAT})
    with gw:
        (shown,) = gw.json("nodes", "ls")
        assert shown["state"] == "live" and shown["processes"] == 2
        assert shown["roles"] == ["smtp", "delivery", "web"]
        assert shown["name"].startswith(socket.gethostname() + "-")
        beaten = shown["heartbeat_at"]
        wait_until(lambda: gw.json("nodes", "ls")[0]["heartbeat_at"] > beaten, 10, 0.5)
    assert gw.json("nodes", "ls") == []
    (stopped,) = gw.json("nodes", "ls", "--all")
    assert stopped["state"] == "stopped" and stopped["name"] == shown["name"]


def policy(blocked: str) -> str:
    return (
        "version: 1\nrules:\n  - id: blocked\n    when:\n"
        f"      recipient_domain: {blocked}\n    action: reject\n"
        f"    reason: Mail to {blocked} is not allowed\n"
    )


def test_policy_reload_reaches_every_node_and_reports_each(
    tmp_path: Path, postgres_url: str
) -> None:
    """`phigate policy reload` on one node makes every node load its own policy
    directory, through the database, and reports each; a node whose files differ
    or do not load keeps running and makes the command fail, naming it."""
    with Sink() as sink, contextlib.ExitStack() as running:
        first = node(tmp_path, "a", postgres_url, sink, None)
        second = node(tmp_path, "b", postgres_url, sink, keys_from=first)
        for gw in (first, second):
            (gw.dir / "policy").mkdir()
            (gw.dir / "policy" / "policy.yaml").write_text(policy("blocked.test"))
            gw.settings["policy_dir"] = str(gw.dir / "policy")
            gw.config.write_text(yaml.safe_dump(gw.settings))
            started(running, gw)
        secret = first.add_principal("ehr1", "clinic.example.org")

        def reload() -> tuple[int, list[dict[str, Any]], str]:
            done = first.cli("policy", "reload", "--json", check=False)
            return done.returncode, json.loads(done.stdout or "[]"), done.stderr

        code, results, _ = reload()
        assert code == 0
        assert [(r["node"], r["result"]) for r in results] == [("a", "reloaded"), ("b", "reloaded")]
        before = results[0]["version"]
        # Both nodes get a new policy: the second, which no signal reaches, loads it too.
        for gw in (first, second):
            (gw.dir / "policy" / "policy.yaml").write_text(policy("partner.test"))
        code, results, _ = reload()
        assert code == 0
        assert {r["version"] for r in results} != {before} and len(
            {r["version"] for r in results}
        ) == 1
        with pytest.raises(smtplib.SMTPDataError) as refused:
            second.submit(secret, SENDER, ["dr@partner.test"])
        assert b"Mail to partner.test is not allowed" in refused.value.smtp_error
        # A node whose files differ is named, and the command fails.
        (second.dir / "policy" / "policy.yaml").write_text(policy("other.test"))
        code, results, stderr = reload()
        assert code == 1 and "copy" in stderr
        assert [(r["node"], r["result"]) for r in results] == [
            ("a", "reloaded"),
            ("b", "other version"),
        ]
        # A node whose files do not load keeps its policy and reports the error.
        (second.dir / "policy" / "policy.yaml").write_text(
            policy("x.test") + "    via: [tls, tls]\n"
        )
        code, results, stderr = reload()
        assert code == 1
        assert [(r["node"], r["result"]) for r in results] == [("a", "reloaded"), ("b", "failed")]
        assert "policy.yaml:8:5" in results[1]["error"]
        assert "via lists a mode twice" in results[1]["error"]
        assert results[1]["version"] != results[0]["version"]
        with pytest.raises(smtplib.SMTPDataError):  # still the policy it ran
            second.submit(secret, SENDER, ["dr@other.test"])
