"""Metrics and health on a running server: what moves, what promtool says, what never shows.

A real `phigate serve` (tests/harness.py) takes mail with canary addresses,
subject and body; /metrics on its own listener must count it by rule, mode
and type, pass `promtool check metrics`, and hold no canary. /readyz must
notice a database that takes no writes, with the SQLite write lock really held.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import Phigate, Sink, free_port, message, via_sink, wait_until

from gateway.store import queue
from gateway.store.database import Database
from gateway.store.keyring import Keyring
from gateway.web.health import Readiness

CANARY = "q7zk"
SENDER = f"canary-{CANARY}@clinic.example.org"
DELIVERED_TO = f"pat-{CANARY}@partner.test"
HELD_TO = f"held-{CANARY}@held.test"
REFUSED_TO = f"no-{CANARY}@refused.test"
SUBJECT = f"CANARY-SUBJ-{CANARY} Jane Doe"
BODY = f"CANARY-BODY-{CANARY} Patient Jane Doe, SSN 123-45-6789, diagnosis E11.9 diabetes."
TOKEN = "metrics-token-0123456789"

POLICY = """\
version: 1
rules:
  - id: refuse-partner
    when: {recipient_domain: refused.test}
    action: reject
    reason: Not a partner
  - id: hold-for-review
    when: {recipient_domain: held.test}
    action: hold
    reason: Held for review
    via: [standard]
  - id: plain
    action: deliver
    via: [standard]
"""


@dataclass
class Answer:
    status: int
    body: str


def get(url: str, token: str | None = None) -> Answer:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, response.read().decode())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read().decode())


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample line of the text format."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def serve(tmp: Path, sink: Sink, **sections: object) -> Phigate:
    policy_dir = tmp / "policy"
    policy_dir.mkdir(exist_ok=True)
    (policy_dir / "policy.yaml").write_text(POLICY)
    metrics = {"enabled": True, "address": f"127.0.0.1:{free_port()}", "token": TOKEN}
    return Phigate(
        tmp,
        delivery=via_sink(sink),
        policy_dir=str(policy_dir),
        metrics=metrics,
        **sections,
    )


def metrics_url(gw: Phigate, path: str = "/metrics") -> str:
    return f"http://{gw.settings['metrics']['address']}{path}"


def web_url(gw: Phigate, path: str) -> str:
    return f"http://{gw.settings['web']['address']}{path}"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: apt-get install prometheus (scripts/test does)"
    return path


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, sink: Sink) -> Iterator[Phigate]:
    gw = serve(tmp_path_factory.mktemp("metrics"), sink)
    with gw:
        yield gw


def test_mail_moves_the_counters_and_no_canary_shows(
    running: Phigate, sink: Sink, promtool: str
) -> None:
    gw = running
    secret = gw.add_principal("ehr2", "clinic.example.org")
    raw = message(SENDER, DELIVERED_TO, SUBJECT, BODY, attachment=f"CANARY-ATT-{CANARY}")
    client = gw.client("ehr2", secret)
    try:
        # One recipient refused by policy, one held, one delivered: a 250 and a DSN.
        assert client.sendmail(SENDER, [DELIVERED_TO, HELD_TO, REFUSED_TO], raw) == {}
    finally:
        client.quit()
    sink.wait_for(2)  # the delivered copy and the DSN for the refused recipient
    wait_until(lambda: 'result="delivered"' in get(metrics_url(gw), TOKEN).body)
    text = get(metrics_url(gw), TOKEN).body
    values = samples(text)
    assert values['phigate_messages_accepted_total{listener="submission"}'] >= 1
    assert values['phigate_policy_decisions_total{action="deliver",rule="plain"}'] >= 1
    assert values['phigate_policy_decisions_total{action="hold",rule="hold-for-review"}'] >= 1
    assert values['phigate_policy_decisions_total{action="reject",rule="refuse-partner"}'] >= 1
    assert values['phigate_deliveries_total{mode="standard",result="delivered"}'] >= 2
    assert values['phigate_phi_findings_total{type="ssn"}'] >= 1
    assert values['phigate_smtp_auth_total{result="ok"}'] >= 1
    assert values['phigate_smtp_connections_total{listener="submission"}'] >= 1
    assert values['phigate_delivery_tls_sessions_total{verification="none"}'] >= 1
    assert values["phigate_intake_seconds_count"] >= 1
    assert values['phigate_queue_jobs{state="held"}'] >= 1
    assert values["phigate_queue_oldest_message_age_seconds"] >= 0
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert CANARY not in text
    assert "partner.test" not in text and "clinic.example.org" not in text
    for path in Path(gw.settings["data_dir"], "metrics").iterdir():
        assert CANARY.encode() not in path.read_bytes(), path


def test_refusals_are_counted_by_code_only(running: Phigate) -> None:
    gw = running
    before = samples(get(metrics_url(gw), TOKEN).body)
    key = 'phigate_smtp_refusals_total{code="530",status="5.7.0"}'
    client = gw.client()  # STARTTLS, no AUTH
    try:
        client.ehlo()
        code, _ = client.mail(SENDER)
        assert code == 530
    finally:
        client.quit()
    text = get(metrics_url(gw), TOKEN).body
    assert samples(text)[key] == before.get(key, 0) + 1
    assert CANARY not in text


def test_metrics_need_the_token_and_health_checks_do_not(running: Phigate) -> None:
    gw = running
    assert get(metrics_url(gw)).status == 401
    assert get(metrics_url(gw), "wrong-token-0123456789").status == 401
    assert get(metrics_url(gw), TOKEN).status == 200
    for url in (metrics_url(gw, "/healthz"), web_url(gw, "/healthz")):
        answer = get(url)
        assert (answer.status, json.loads(answer.body)) == (200, {"status": "alive"})
    for url in (metrics_url(gw, "/readyz"), web_url(gw, "/readyz")):
        answer = get(url)
        assert (answer.status, json.loads(answer.body)) == (200, {"status": "ready"})
    # Not on the public web app.
    assert get(web_url(gw, "/metrics"), TOKEN).status == 404


def test_readyz_says_503_while_the_database_takes_no_writes(running: Phigate) -> None:
    gw = running
    # Another writer holds SQLite's write lock: the server's writes wait, then fail.
    holder = sqlite3.connect(gw.db_path, isolation_level=None, timeout=10)
    try:
        holder.execute("BEGIN IMMEDIATE")
        for url in (metrics_url(gw, "/readyz"), web_url(gw, "/readyz")):
            answer = get(url)
            assert answer.status == 503
            body = json.loads(answer.body)
            assert body["status"] == "not ready"
            assert set(body["problems"]) == {"database"}
            assert "within" in body["problems"]["database"]
        assert get(metrics_url(gw, "/healthz")).status == 200  # alive all the same
    finally:
        holder.rollback()
        holder.close()
    wait_until(lambda: get(metrics_url(gw, "/readyz")).status == 200, 30)


def test_two_processes_add_up(tmp_path: Path, sink: Sink) -> None:
    gw = serve(tmp_path, sink, processes=2)
    secret = gw.add_principal("ehr1", "clinic.example.org")
    sent = 0

    def client_sends(n: int) -> None:
        for i in range(2):
            gw.submit(secret, SENDER, [f"r{n}-{i}@partner.test"])

    with gw:
        wait_until(lambda: gw.log_text().count('"event":"ready"') == 2)
        for _ in range(5):  # until both processes accepted some (the kernel picks)
            # Clients at the same time: while one process is busy, the other accepts.
            threads = [threading.Thread(target=client_sends, args=(sent + n,)) for n in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            sent += 12
            pids = {e["pid"] for e in gw.log_events() if e.get("event") == "accepted"}
            if len(pids) == 2:
                break
        assert len(pids) == 2, "every message went to one process"
        key = 'phigate_messages_accepted_total{listener="submission"}'
        wait_until(lambda: samples(get(metrics_url(gw), TOKEN).body).get(key) == sent)
        # Whichever process answers, the sum is the same.
        for _ in range(6):
            assert samples(get(metrics_url(gw), TOKEN).body)[key] == sent
        delivered = 'phigate_deliveries_total{mode="standard",result="delivered"}'
        wait_until(lambda: samples(get(metrics_url(gw), TOKEN).body).get(delivered) == sent)
    assert CANARY not in gw.log_text()


def _queue(db: Database, keyring: Keyring, received_at: float, held: bool, count: int) -> None:
    queue_id = queue.new_queue_id()
    record = queue.NewMessage(
        queue_id,
        received_at,
        "submission",
        "ehr1",
        "127.0.0.1",
        SENDER,
        1,
        None,
        keyring.seal(b"x", queue_id.encode()),
    )
    jobs = [queue.NewJob(f"r{n}@partner.test", ("standard",), held=held) for n in range(count)]
    with db.transaction() as conn:
        queue.insert_message(conn, record, jobs)


def test_queue_depth_and_the_readiness_probe_on_the_store(db: Database, keyring: Keyring) -> None:
    with db.reading() as conn:
        assert queue.depth(conn) == queue.Depth({"queued": 0, "active": 0, "held": 0}, None)
    now = time.time()
    _queue(db, keyring, now - 100, held=False, count=2)
    _queue(db, keyring, now - 50, held=True, count=1)
    with db.reading() as conn:
        assert queue.depth(conn) == queue.Depth({"queued": 2, "active": 0, "held": 1}, now - 100)
    readiness = Readiness(db, keyring)
    assert asyncio.run(readiness.problems()) == {"listeners": "not serving: starting"}
    readiness.serving(lambda: [])
    assert asyncio.run(readiness.problems()) == {}
    with db.reading() as conn:  # the probe changed nothing
        assert queue.depth(conn).jobs == {"queued": 2, "active": 0, "held": 1}
