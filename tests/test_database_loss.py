"""A node whose PostgreSQL goes away while mail keeps coming: it answers 451 4.3.0 for
what it cannot store and never 250, keeps running, says it is not ready, and once the
server is back takes, stores and delivers mail again by itself. Every 250 is delivered."""

from __future__ import annotations

import asyncio
import smtplib
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from databases import private_postgres
from harness import Phigate, Sink, message, via_sink, wait_until
from sqlalchemy.exc import OperationalError

from gateway.store import queue
from gateway.store.database import Database

SENDER = "ehr@clinic.example.org"
DOWN_SECONDS = 4.0


class Closed(Exception):
    """The server answered 421 and closed the session."""


@dataclass(frozen=True)
class Attempt:
    message_id: str
    began: float  # monotonic
    ended: float
    code: int  # the reply to DATA, or to the command refused before it; 0: no reply


class Submitter(threading.Thread):
    """One client sending one message after another, each with its own Message-ID,
    over one session, a new one whenever the server ends it."""

    def __init__(self, gw: Phigate, secret: str) -> None:
        super().__init__(daemon=True)
        self.gw = gw
        self.secret = secret
        self.attempts: list[Attempt] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        client: smtplib.SMTP | None = None
        n = 0
        while not self.stopping.is_set():
            message_id = f"loss{n}@clinic.example.org"
            n += 1
            began = time.monotonic()
            try:
                if client is None:
                    client = self.gw.client("ehr1", self.secret)
                code = self._send(client, message_id)
            except smtplib.SMTPAuthenticationError as exc:
                code, client = exc.smtp_code, None
            except Closed:
                code, client = 421, None
            except (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError):
                code, client = 0, None
            with self.lock:
                self.attempts.append(Attempt(message_id, began, time.monotonic(), code))
            if code != 250:
                time.sleep(0.05)
        if client is not None:
            client.quit()

    @staticmethod
    def _send(client: smtplib.SMTP, message_id: str) -> int:
        raw = message(SENDER, "dr@partner.test", "s", "b", message_id=f"<{message_id}>")
        for command, arg in (("mail", SENDER), ("rcpt", "dr@partner.test")):
            code, _ = getattr(client, command)(arg)
            if code == 421:  # the server ends the session (too many refusals)
                raise Closed
            if code != 250:
                client.rset()
                return int(code)
        code, _ = client.data(raw)
        return int(code)

    def since(self, at: float) -> list[Attempt]:
        with self.lock:
            return [a for a in self.attempts if a.began >= at]


def readiness(gw: Phigate) -> int:
    try:
        with urllib.request.urlopen(f"http://{gw.settings['web']['address']}/readyz", timeout=10):
            return 200
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_a_postgresql_restart_during_intake_loses_no_250(tmp_path: Path, mode: str) -> None:
    with private_postgres() as server, Sink() as sink:
        gw = Phigate(
            tmp_path,
            database_url=server.url,
            delivery=via_sink(sink, workers=2),
            node={"heartbeat_seconds": 1},
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        with gw:
            submitter = Submitter(gw, secret)
            submitter.start()
            wait_until(lambda: len(sink.messages) >= 20, 30)
            assert readiness(gw) == 200

            server.stop(mode)
            down_at = time.monotonic()
            time.sleep(DOWN_SECONDS / 2)
            ready_while_down = readiness(gw)
            time.sleep(DOWN_SECONDS / 2)
            starting_at = time.monotonic()
            server.start()
            up_at = time.monotonic()

            # Recovered by itself: a message taken after the restart is delivered.
            def accepted_again() -> bool:
                return any(a.code == 250 for a in submitter.since(up_at))

            wait_until(accepted_again, 30)
            recovered_after = min(a.ended for a in submitter.since(up_at) if a.code == 250) - up_at
            time.sleep(1)
            submitter.stopping.set()
            submitter.join(30)
            assert gw.proc is not None and gw.proc.poll() is None  # no crash

            attempts = submitter.attempts
            accepted = {a.message_id for a in attempts if a.code == 250}

            def delivered() -> set[str]:
                ids = set()
                for received in sink.messages:
                    for line in received.content.splitlines():
                        if line.lower().startswith(b"message-id: <"):
                            ids.add(line.split(b"<", 1)[1].split(b">", 1)[0].decode())
                return ids

            wait_until(lambda: accepted <= delivered(), 60, 0.2)
            assert readiness(gw) == 200
            # The heartbeat beats again: the node is no longer shown as stale.
            wait_until(lambda: gw.json("nodes", "ls")[0]["state"] == "live", 10, 0.5)
            events = gw.log_events()
            log_text = gw.log_text()
        # Begun once the server had stopped, ended before it was being started again:
        # no 250, every attempt answered with a 4xx.
        during = [a for a in attempts if a.began > down_at and a.ended < starting_at]
        codes = Counter(a.code for a in during)
        print(
            f"{mode}: {len(attempts)} attempts, {len(accepted)} accepted and delivered; "
            f"while down: {dict(codes)}; first 250 {recovered_after:.2f} s after the restart"
        )
        assert during and all(400 <= a.code < 500 for a in during), codes
        assert codes[451] > 0
        assert all(a.code != 0 for a in attempts)  # every command answered, even mid-restart
        assert ready_while_down == 503
        assert "Traceback" not in log_text
        names = [e.get("event") for e in events]
        assert "database_unavailable" in names and "database_available" in names
        assert names.index("database_unavailable") < names.index("database_available")
        assert names.count("database_unavailable") == 1  # once per loss, not per write
        assert "claim_resumed" in names  # delivery claims again without a restart
        assert recovered_after < 15


def test_the_store_recovers_from_a_restart_it_did_not_see() -> None:
    """Connections kept from before a quiet restart are found dead and replaced: the
    first write (a COMMIT not yet sent) and the first read after it succeed all the
    same. Writes while the server is down fail, each caller with the error."""
    with private_postgres() as server:
        db = Database(server.url)
        db.migrate()
        db.start()

        async def write_and_read() -> int:
            await db.write(queue.probe)
            return int(await db.read(lambda conn: conn.exec_driver_sql("SELECT 1").scalar()))

        async def writes_while_down() -> list[BaseException | None]:
            return await asyncio.gather(
                *(db.write(queue.probe) for _ in range(5)), return_exceptions=True
            )

        try:
            assert asyncio.run(write_and_read()) == 1
            server.stop("fast")
            server.start()
            assert asyncio.run(write_and_read()) == 1  # no error, no ping first
            assert db.available
            server.stop("immediate")
            failed = asyncio.run(writes_while_down())
            assert all(isinstance(exc, OperationalError) for exc in failed), failed
            assert not db.available
            server.start()
            assert asyncio.run(write_and_read()) == 1
            assert db.available
        finally:
            db.close()
