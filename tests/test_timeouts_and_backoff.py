"""Timeouts that free stuck connections, and the AUTH back-off schedule."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from harness import Phigate

from gateway.config import LimitsConfig
from gateway.smtp.auth import AuthGuard


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
    delays = [guard.failure("ehr1", "10.0.0.1") for _ in range(4)]
    assert delays == [0.5, 1.0, 2.0, 3.0]  # doubling, capped
    assert not guard.locked("ehr1", "10.0.0.1")
    guard.failure("ehr1", "10.0.0.1")
    assert guard.locked("ehr1", "10.0.0.1")
    assert not guard.locked("ehr1", "10.9.9.9")  # the user is not locked elsewhere
    assert guard.locked("other", "10.0.0.1")  # but the address is, for any user
    assert not guard.locked("other", "10.9.9.9")
    now[0] += 61
    assert not guard.locked("ehr1", "10.0.0.1")
