"""Graceful shutdown: SIGTERM stops new connections but lets a transaction finish."""

from __future__ import annotations

import signal
import smtplib
import socket
import time
from pathlib import Path

import pytest
from harness import Phigate, insecure_context, message

# Run once more on PostgreSQL by the test command (tests/databases.py).
pytestmark = pytest.mark.store


def test_sigterm_lets_an_open_transaction_get_its_250(tmp_path: Path) -> None:
    gw = Phigate(tmp_path)
    secret = gw.add_principal("ehr1", "clinic.example.org")
    gw.start()
    busy = gw.client("ehr1", secret)
    idle = gw.client("ehr1", secret)
    busy.mail("a@clinic.example.org")
    busy.rcpt("b@partner.test")
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(OSError):  # the listening socket is closed
        socket.create_connection(("127.0.0.1", gw.port), timeout=2).close()
    code, reply = busy.data(message("a@clinic.example.org", "b@partner.test", "s", "b"))
    assert code == 250, reply
    try:
        idle_code = idle.noop()[0]  # an idle session is told and closed, not waited for
    except (smtplib.SMTPServerDisconnected, OSError):
        idle_code = 421
    assert idle_code == 421
    assert gw.proc.wait(30) == 0
    gw.proc = None
    queue_id = reply.decode().rsplit(" ", 1)[1]
    info = gw.json("queue", "show", queue_id)
    assert info["recipients"][0]["recipient"] == "b@partner.test"
    assert info["recipients"][0]["state"] in ("queued", "delivered")
    assert "Traceback" not in gw.log_text()


def test_sigterm_lets_an_https_request_in_progress_get_its_answer(tmp_path: Path) -> None:
    """The web app stops accepting at once, and a request whose body is still coming
    is answered before phigate stops."""
    gw = Phigate(tmp_path, web={"tls": True})
    host, port = str(gw.settings["web"]["address"]).rsplit(":", 1)
    body = b'{"address": "someone@example.org"}'
    gw.start()
    raw = socket.create_connection((host, int(port)), timeout=5)
    with insecure_context().wrap_socket(raw) as sock:
        sock.sendall(
            b"POST /api/v1/consent/opt-outs HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10]
        )
        time.sleep(0.3)  # the request's line and headers are in
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(OSError):  # the web socket is closed
            socket.create_connection((host, int(port)), timeout=2).close()
        sock.sendall(body[10:])
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:100]  # no API token: a real answer
    assert gw.proc.wait(30) == 0
    gw.proc = None
    assert "Traceback" not in gw.log_text()
