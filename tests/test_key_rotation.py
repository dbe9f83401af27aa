"""Master key rotation while phigate serves: no accepted message is ever lost.

The server must follow a rotation (SIGHUP from `phigate keys rotate`, a
changed CURRENT file, a key id it has not loaded), seal new mail under the
newest key, and `phigate keys retire` must refuse a key that a stored row or
a running process still needs. Mail waits behind a next hop that defers, so
it is still queued when the old keys are removed.
"""

from __future__ import annotations

import json
import shutil
import smtplib
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from harness import PHIGATE, Phigate, Sink, message, via_sink, wait_until

SENDER = "a@clinic.example.org"
RECIPIENT = "b@partner.test"
MAX_MESSAGES = 1000  # a bound; the test stops the load long before
PACE = 0.01  # seconds between submissions: a steady load, not a flood


class Submissions(threading.Thread):
    """Submits numbered messages over SMTP until stopped; remembers which got a 250."""

    def __init__(self, gw: Phigate, secret: str) -> None:
        super().__init__(daemon=True)
        self.gw, self.secret = gw, secret
        self.accepted: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        sent = 0
        while not self.halt.is_set() and sent < MAX_MESSAGES:
            try:
                client = self.gw.client("ehr1", self.secret)
            except (OSError, smtplib.SMTPException):
                time.sleep(0.1)
                continue
            try:
                while not self.halt.is_set() and sent < MAX_MESSAGES:
                    token = f"msg-{sent:04d}"
                    sent += 1
                    client.sendmail(SENDER, [RECIPIENT], message(SENDER, RECIPIENT, token, token))
                    self.accepted.append(token)  # sendmail raises unless the reply was 250
                    time.sleep(PACE)
                client.quit()
            except (OSError, smtplib.SMTPException):
                continue  # not accepted: nothing was promised

    def wait_for_more(self, count: int) -> None:
        target = len(self.accepted) + count
        wait_until(lambda: len(self.accepted) >= target, timeout=30)

    def finish(self) -> list[str]:
        self.halt.set()
        self.join(30)
        return list(self.accepted)


def _deferring_sink() -> tuple[Sink, threading.Event]:
    """A next hop that answers 451 while the event is set."""
    sink = Sink()
    deferring = threading.Event()
    deferring.set()
    sink.handler.script = lambda _rcpt: "451 4.3.0 try later" if deferring.is_set() else None
    return sink, deferring


def _subjects(sink: Sink) -> set[str]:
    return {m.content.split(b"Subject: ")[1].split(b"\r\n")[0].decode() for m in sink.messages}


def _uses(gw: Phigate) -> dict[str, dict[str, Any]]:
    return {use["key_id"]: use for use in gw.json("keys", "ls")}


def _current(gw: Phigate) -> str:
    return (Path(gw.settings["data_dir"]) / "keys" / "CURRENT").read_text().strip()


def _query(gw: Phigate, sql: str) -> list[Any]:
    """Read the store directly (quicker than a CLI process per poll)."""
    conn = sqlite3.connect(f"file:{gw.db_path}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute(sql)]
    finally:
        conn.close()


def _stored_key_ids(gw: Phigate) -> set[str]:
    return set(_query(gw, "SELECT DISTINCT key_id FROM messages WHERE wrapped_key IS NOT NULL"))


def _all_attempted(gw: Phigate) -> bool:
    return _query(gw, "SELECT count(*) FROM jobs WHERE attempts = 0") == [0]


def _queue_empty(gw: Phigate) -> bool:
    return _query(gw, "SELECT count(*) FROM jobs WHERE state IN ('queued', 'active')") == [0]


def _server_pids(gw: Phigate, count: int) -> set[int]:
    wait_until(lambda: gw.log_text().count('"event":"ready"') >= count)
    return {e["pid"] for e in gw.log_events() if e.get("event") == "ready"}


def test_rotating_twice_under_load_then_retiring_the_old_keys_loses_no_mail(
    tmp_path: Path,
) -> None:
    sink, deferring = _deferring_sink()
    with sink:
        # Deferred mail waits until `queue retry`: the load is the submissions.
        gw = Phigate(
            tmp_path, processes=2, delivery=via_sink(sink, tls="none", retry_schedule=[600.0])
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            workers = _server_pids(gw, 2)
            first_key = _current(gw)
            load = Submissions(gw, secret)
            load.start()
            load.wait_for_more(10)
            first = gw.json("keys", "rotate")
            load.wait_for_more(10)
            second = gw.json("keys", "rotate")
            load.wait_for_more(10)
            accepted = load.finish()
            assert first["rewrapped"] > 0 and second["rewrapped"] > 0
            assert set(second["processes"]) == workers  # both processes switched
            assert set(second["retirable"]) == {first_key, first["key_id"]}

            uses = _uses(gw)
            newest = second["key_id"]
            assert uses[newest]["current"] and set(uses[newest]["processes"]) == workers
            assert uses[newest]["rows"] >= len(accepted)  # all still queued
            for old in second["retirable"]:
                assert uses[old]["rows"] == 0 and uses[old]["processes"] == []
            assert _stored_key_ids(gw) == {newest}

            refused = gw.cli("keys", "retire", newest, check=False)
            assert refused.returncode == 1 and "current master key" in refused.stderr
            for old in second["retirable"]:
                gw.cli("keys", "retire", old)
            assert set(_uses(gw)) == {newest}
        # A fresh start holds only the files on disk: nothing lives on in memory.
        gw.start()
        try:
            deferring.clear()
            gw.cli("queue", "retry", "--all")
            wait_until(lambda: set(accepted) <= _subjects(sink), timeout=60)
            wait_until(lambda: _queue_empty(gw))
        finally:
            gw.stop()
        assert "Traceback" not in gw.log_text()


def test_a_server_that_missed_the_signal_follows_current_and_opens_rewrapped_mail(
    tmp_path: Path,
) -> None:
    sink, deferring = _deferring_sink()
    with sink:
        # Retries only when asked (`queue retry`): nothing opens mail unless the test says so.
        gw = Phigate(tmp_path, delivery=via_sink(sink, tls="none", retry_schedule=[600.0]))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            assert gw.proc is not None
            pid = gw.proc.pid
            gw.submit(secret, SENDER, [RECIPIENT], message(SENDER, RECIPIENT, "first", "x"))
            wait_until(lambda: _all_attempted(gw))
            k1 = _current(gw)
            # Without the pid file the CLI cannot signal the server.
            (Path(gw.settings["data_dir"]) / "phigate.pid").unlink()

            late = gw.cli("keys", "rotate", "--timeout", "1", check=False)
            assert late.returncode == 1
            assert (
                f"pid {pid} seals with {k1}" in late.stderr and "Keep the older keys" in late.stderr
            )
            uses = _uses(gw)
            k2 = _current(gw)
            assert uses[k1]["rows"] == 0 and uses[k1]["processes"] == [pid]
            assert uses[k2]["rows"] == 1

            busy = gw.cli("keys", "retire", k1, check=False)
            assert busy.returncode == 1 and f"server process(es) {pid}" in busy.stderr
            assert (Path(gw.settings["data_dir"]) / "keys" / f"{k1}.key").exists()

            # The queued message is now wrapped under k2, which the server never loaded.
            deferring.clear()
            gw.cli("queue", "retry", "--all")
            wait_until(lambda: _subjects(sink) == {"first"})
            wait_until(lambda: _uses(gw)[k2]["processes"] == [pid])
            deferring.set()

            # Another rotation nobody signals: the next message sealed notices CURRENT.
            rotating = subprocess.Popen(
                [*PHIGATE, "keys", "rotate", "--json", "--timeout", "30", "-c", str(gw.config)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            keys_dir = Path(gw.settings["data_dir"]) / "keys"
            wait_until(lambda: len(list(keys_dir.glob("mk-*.key"))) == 3)
            gw.submit(secret, SENDER, [RECIPIENT], message(SENDER, RECIPIENT, "second", "x"))
            out, err = rotating.communicate(timeout=60)
            assert rotating.returncode == 0, err
            k3 = _current(gw)
            assert k3 not in (k1, k2) and _stored_key_ids(gw) == {k3}
            assert json.loads(out)["processes"] == [pid]

            gw.cli("keys", "retire", k1)
            gw.cli("keys", "retire", k2)
            deferring.clear()
            gw.cli("queue", "retry", "--all")
            wait_until(lambda: _subjects(sink) == {"first", "second"})
        assert "Traceback" not in gw.log_text()


def test_retire_refuses_a_key_that_stored_rows_still_use(tmp_path: Path) -> None:
    sink, deferring = _deferring_sink()
    with sink:
        gw = Phigate(tmp_path, delivery=via_sink(sink, tls="none"))
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            gw.submit(secret, SENDER, [RECIPIENT], message(SENDER, RECIPIENT, "kept", "x"))
            wait_until(lambda: _all_attempted(gw))
        k1 = _current(gw)
        backup = tmp_path / "backup.db"
        shutil.copy(gw.db_path, backup)
        out = gw.cli("keys", "rotate").stdout
        assert "1 data keys re-wrapped" in out and "No running server found" in out
        shutil.copy(backup, gw.db_path)  # a restored backup: its row is wrapped under k1

        assert _uses(gw)[k1]["rows"] == 1
        refused = gw.cli("keys", "retire", k1, check=False)
        assert refused.returncode == 1
        assert f"1 stored data keys are still wrapped under {k1}" in refused.stderr
        assert "phigate keys rewrap" in refused.stderr
        assert (Path(gw.settings["data_dir"]) / "keys" / f"{k1}.key").exists()

        assert gw.json("keys", "rewrap")["rewrapped"] == 1
        gw.cli("keys", "retire", k1)
        with gw:
            deferring.clear()
            wait_until(lambda: _subjects(sink) == {"kept"})
