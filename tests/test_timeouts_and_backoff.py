"""Timeouts that free stuck connections, and the AUTH back-off schedule."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import Phigate, message, tls_client

from gateway.config import LimitsConfig
from gateway.smtp.auth import AuthGuard

DOMAIN = "clinic.example.org"
SENDER = "ehr@clinic.example.org"
RECIPIENT = "dr@partner.test"


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closes the connection (reads until EOF)."""
    start = time.monotonic()
    sock.settimeout(seconds)
    while sock.recv(4096):
        pass
    return time.monotonic() - start


def test_stalled_tls_handshakes_and_idle_sessions_are_closed(tmp_path: Path) -> None:
    # One connection per address: a stalled session that kept its slot would lock us out.
    gw = Phigate(
        tmp_path,
        limits={"tls_handshake_timeout": 1.0, "idle_timeout": 2.0, "max_connections_per_ip": 1},
    )
    with gw:
        with socket.create_connection(("127.0.0.1", gw.port)) as stalled:
            stalled.recv(200)  # greeting
            stalled.sendall(b"EHLO client.test\r\n")
            time.sleep(0.2)
            stalled.recv(1000)
            stalled.sendall(b"STARTTLS\r\n")
            assert stalled.recv(200).startswith(b"220")
            # ...and never send a ClientHello
            assert _closed_within(stalled, 10) < 5
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", gw.port)) as idle:
            assert idle.recv(200).startswith(b"220")
            waited = _closed_within(idle, 10)
            assert 1.5 < waited < 5


def test_auth_backoff_doubles_and_lockout_expires() -> None:
    now = [1000.0]
    limits = LimitsConfig(
        auth_backoff_base=0.5, auth_backoff_max=3.0, auth_lockout_after=5, auth_lockout_seconds=60.0
    )
    guard = AuthGuard(limits, clock=lambda: now[0])

    async def scenario() -> None:
        delays = [await guard.failure("ehr1", "10.0.0.1") for _ in range(4)]
        assert delays == [0.5, 1.0, 2.0, 3.0]  # doubling, capped
        assert not await guard.locked("ehr1", "10.0.0.1")
        await guard.failure("ehr1", "10.0.0.1")
        assert await guard.locked("ehr1", "10.0.0.1")
        assert not await guard.locked("ehr1", "10.9.9.9")  # the user is not locked elsewhere
        assert await guard.locked("other", "10.0.0.1")  # but the address is, for any user
        assert not await guard.locked("other", "10.9.9.9")
        now[0] += 61
        assert not await guard.locked("ehr1", "10.0.0.1")

    asyncio.run(scenario())


def _trickled_until_closed(sock: socket.socket, line: bytes, interval: float) -> float | None:
    """Send `line` a byte every `interval` seconds, over and over, never a CRLF; seconds
    until the server closed the connection (None if it had not after 100 bytes)."""
    started = time.monotonic()
    sock.settimeout(interval)
    for byte in itertools.islice(itertools.cycle(line), 100):
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - started
        sock.sendall(bytes([byte]))
    return None


def test_a_slowloris_client_is_cut_off_at_the_idle_timeout_while_others_send(
    tmp_path: Path,
) -> None:
    """A client that trickles a command line a byte at a time, never ending it, is
    closed at limits.idle_timeout: its bytes do not keep it alive. Meanwhile a
    legitimate client sends mail as usual."""
    idle = 2.0
    gw = Phigate(tmp_path, limits={"idle_timeout": idle})
    secret = gw.add_principal("ehr1", DOMAIN)
    with gw, ThreadPoolExecutor(1) as pool:
        slow = socket.create_connection(("127.0.0.1", gw.port), source_address=("127.0.0.2", 0))
        with slow:
            assert slow.recv(200).startswith(b"220")
            trickle = pool.submit(_trickled_until_closed, slow, b"EHLO trickle.example", 0.2)
            time.sleep(0.5)  # the trickle is under way
            with tls_client(gw.port) as sender:
                sender.login("ehr1", secret)
                for n in range(3):
                    sender.sendmail(SENDER, [RECIPIENT], message(SENDER, RECIPIENT, f"m{n}", "hi"))
            assert not trickle.done()  # still trickling after the mail went through
            closed_after = trickle.result(timeout=30)
    assert closed_after is not None and idle - 0.2 < closed_after < idle + 3, closed_after


def test_data_sent_steadily_for_longer_than_the_idle_timeout_is_accepted(
    tmp_path: Path,
) -> None:
    """The idle timer restarts whenever DATA octets arrive: a slow link sending a
    message for longer than limits.idle_timeout is not cut off; a stall is."""
    idle = 1.0
    gw = Phigate(tmp_path, limits={"idle_timeout": idle})
    secret = gw.add_principal("ehr1", DOMAIN)
    body = message(SENDER, RECIPIENT, "steady", "line of the report\r\n" * 40)
    pieces = [body[i : i + 100] for i in range(0, len(body), 100)]
    with gw:
        with tls_client(gw.port) as sender:
            sender.login("ehr1", secret)
            sender.mail(SENDER)
            sender.rcpt(RECIPIENT)
            sender.putcmd("data")
            assert sender.getreply()[0] == 354
            started = time.monotonic()
            for piece in pieces:
                sender.send(piece)
                time.sleep(3 * idle / len(pieces))
            sender.send(b"\r\n.\r\n")
            code, _ = sender.getreply()
            assert time.monotonic() - started > 2 * idle
            assert code == 250
        with tls_client(gw.port) as stalled:
            stalled.login("ehr1", secret)
            stalled.mail(SENDER)
            stalled.rcpt(RECIPIENT)
            stalled.putcmd("data")
            assert stalled.getreply()[0] == 354
            stalled.send(pieces[0])
            assert _closed_within(stalled.sock, 10) < idle + 3
