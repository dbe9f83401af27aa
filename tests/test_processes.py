"""Several server processes on one store: each message delivered once, clean stop, no orphans."""

from __future__ import annotations

import contextlib
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Phigate, Sink, message, via_sink, wait_until

# Run once more on PostgreSQL by the test command (tests/databases.py).
pytestmark = pytest.mark.store

MESSAGES_PER_CLIENT = 15
CLIENTS = 6


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_two_processes_share_the_load_and_deliver_each_message_once(tmp_path: Path) -> None:
    with Sink() as sink:
        gw = Phigate(
            tmp_path,
            processes=2,
            delivery=via_sink(sink, tls="none"),
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            wait_until(lambda: gw.log_text().count('"event":"ready"') == 2)
            assert gw.proc is not None
            workers = _children(gw.proc.pid)
            assert len(workers) == 2

            def submit(n: int) -> None:
                client = gw.client("ehr1", secret)
                for i in range(MESSAGES_PER_CLIENT):
                    token = f"tok-{n}-{i}"
                    client.sendmail(
                        "a@clinic.example.org",
                        ["b@partner.test"],
                        message("a@clinic.example.org", "b@partner.test", token, token),
                    )
                client.quit()

            threads = [threading.Thread(target=submit, args=(n,)) for n in range(CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            sink.wait_for(CLIENTS * MESSAGES_PER_CLIENT)
            time.sleep(0.5)  # let any duplicate show up
        counts = Counter(m.content.split(b"Subject: ")[1].split(b"\r\n")[0] for m in sink.messages)
        assert len(counts) == CLIENTS * MESSAGES_PER_CLIENT
        assert set(counts.values()) == {1}
        accepted_by = {e["pid"] for e in gw.log_events() if e.get("event") == "ready"}
        assert accepted_by == workers
        assert not any(_alive(pid) for pid in workers)  # SIGTERM drained every process
        assert "Traceback" not in gw.log_text()


def test_with_every_session_on_one_process_the_idle_one_delivers(tmp_path: Path) -> None:
    # The poll is slow: only the wake-up sent to the idle process gets the mail out
    # in time, and the process holding the session never claims it first.
    with Sink() as sink:
        gw = Phigate(tmp_path, processes=2, delivery=via_sink(sink, tls="none", poll_interval=30))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            wait_until(lambda: gw.log_text().count('"event":"ready"') == 2)
            for _ in range(2):  # the second session may land on either process
                client = gw.client("ehr1", secret)
                for i in range(5):
                    body = message("a@clinic.example.org", "b@partner.test", f"s{i}", "hello")
                    client.sendmail("a@clinic.example.org", ["b@partner.test"], body)
                client.quit()
            sink.wait_for(10, timeout=20)
            wait_until(lambda: gw.log_text().count('"event":"delivered"') == 10)
        events = gw.log_events()
    accepted = {e["queue_id"]: e["pid"] for e in events if e.get("event") == "accepted"}
    delivered = {e["queue_id"]: e["pid"] for e in events if e.get("event") == "delivered"}
    assert delivered.keys() == accepted.keys() and len(accepted) == 10
    assert all(delivered[q] != accepted[q] for q in accepted)


def test_killing_the_supervisor_leaves_no_process_serving(tmp_path: Path) -> None:
    gw = Phigate(tmp_path, processes=2)
    gw.start()
    wait_until(lambda: gw.log_text().count('"event":"ready"') == 2)
    assert gw.proc is not None
    workers = _children(gw.proc.pid)
    gw.proc.send_signal(signal.SIGKILL)
    gw.proc.wait(10)
    gw.proc = None
    wait_until(lambda: not any(_alive(pid) for pid in workers), timeout=10)
    wait_until(lambda: not _phigate_answers(gw.port), timeout=10)


def _phigate_answers(port: int) -> bool:
    """Whether a phigate greeting comes from the port (another program may have it since)."""
    with socket.socket() as probe:
        probe.settimeout(2)
        if probe.connect_ex(("127.0.0.1", port)) != 0:
            return False
        try:
            return b"phigate" in probe.recv(200)
        except OSError:
            return False


_FROZEN_CHILD = """
import gc, os, signal, sys
from gateway.supervisor import supervise
built_at_start_up = [object() for _ in range(1000)]

def child(index):
    with open(sys.argv[1], "w") as out:
        out.write(str(gc.get_freeze_count()))
    os.kill(os.getppid(), signal.SIGTERM)

supervise(1, child)
"""


def test_processes_are_forked_with_start_up_objects_frozen(tmp_path: Path) -> None:
    # A child's garbage collections must not touch what start-up built (copy-on-write:
    # every page they touch is copied into the child).
    report = tmp_path / "freeze-count"
    subprocess.run([sys.executable, "-c", _FROZEN_CHILD, str(report)], check=True, timeout=60)
    assert int(report.read_text()) >= 1000


def _send_one(client: smtplib.SMTP, token: str) -> None:
    body = message("a@clinic.example.org", "b@partner.test", token, "hello")
    client.sendmail("a@clinic.example.org", ["b@partner.test"], body)


def _accepted_by(gw: Phigate) -> Counter[int]:
    """How many messages each server process took in, by its pid."""
    return Counter(e["pid"] for e in gw.log_events() if e.get("event") == "accepted")


@contextlib.contextmanager
def _two_processes(tmp_path: Path) -> Iterator[tuple[Phigate, str]]:
    """A serving node of two processes, both ready, and a principal's secret."""
    gw = Phigate(tmp_path, processes=2)
    secret = gw.add_principal("ehr1", "clinic.example.org")
    with gw:
        wait_until(lambda: gw.log_text().count('"event":"ready"') == 2)
        yield gw, secret


def test_sessions_opened_one_after_another_are_spread_over_the_processes(
    tmp_path: Path,
) -> None:
    # An idle node's kernel tends to hand every new connection to the same process;
    # the one holding more sessions leaves the next to its sibling.
    with _two_processes(tmp_path) as (gw, secret):
        clients = []
        for _ in range(8):
            clients.append(gw.client("ehr1", secret))  # greeted: its session has started
            time.sleep(0.05)
        for n, client in enumerate(clients):
            _send_one(client, f"spread-{n}")
        wait_until(lambda: sum(_accepted_by(gw).values()) == 8)
        for client in clients:
            client.quit()
    per_process = sorted(_accepted_by(gw).values())
    assert len(per_process) == 2 and per_process[1] - per_process[0] <= 2, per_process


def test_a_sibling_that_does_not_accept_delays_a_connection_only_a_moment(
    tmp_path: Path,
) -> None:
    with _two_processes(tmp_path) as (gw, secret):
        assert gw.proc is not None
        first = gw.client("ehr1", secret)
        _send_one(first, "first")
        wait_until(lambda: sum(_accepted_by(gw).values()) == 1)
        holder = next(iter(_accepted_by(gw)))
        (other,) = _children(gw.proc.pid) - {holder}
        os.kill(other, signal.SIGSTOP)  # holds fewer sessions, but takes none
        try:
            started = time.monotonic()
            later = [gw.client("ehr1", secret) for _ in range(3)]
            greeted_in = time.monotonic() - started
            for n, client in enumerate(later):
                _send_one(client, f"later-{n}")
                client.quit()
        finally:
            os.kill(other, signal.SIGCONT)
        first.quit()
    assert _accepted_by(gw) == Counter({holder: 4})
    assert greeted_in < 5.0
