"""limits.max_large_messages: past limits.large_message_size a message is read only
while it holds a turn, so many large messages at once cannot each hold their whole
content in memory; small messages never wait.

Real parts: a phigate server with one large-message turn, smtplib clients over
STARTTLS writing DATA in pieces, an SMTP sink, and /metrics read over HTTP.
"""

from __future__ import annotations

import email
import smtplib
import threading
import urllib.request
from email.policy import default
from pathlib import Path

import pytest
from harness import Phigate, Sink, free_port, message, via_sink

# Run once more on PostgreSQL by the test command (tests/databases.py).
pytestmark = pytest.mark.store

SENDER = "ehr@clinic.example.org"
RECIPIENT = "doctor@partner.example.com"
TOKEN = "metrics-token-for-the-large-message-test"
LARGE = 64 * 1024


def large_message(subject: str) -> bytes:
    """CRLF line ends and no line starting with ".": sent as it is, without dot-stuffing."""
    body = "\n".join(f"line {n}: results scanned and attached" for n in range(8000))
    data = message(SENDER, RECIPIENT, subject, body, message_id=f"<{subject}@example.org>")
    assert len(data) > 3 * LARGE and b"\n." not in data
    return data


def open_data(client: smtplib.SMTP) -> None:
    assert client.mail(SENDER)[0] == 250
    assert client.rcpt(RECIPIENT)[0] == 250
    client.putcmd("data")
    assert client.getreply()[0] == 354


def large_waits(gw: Phigate) -> float:
    url = f"http://{gw.settings['metrics']['address']}/metrics"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("phigate_large_message_waits_total "):
                return float(line.split()[1])
    return 0.0


def test_large_messages_take_turns_and_small_ones_pass(tmp_path: Path) -> None:
    metrics = {"enabled": True, "address": f"127.0.0.1:{free_port()}", "token": TOKEN}
    limits = {"large_message_size": LARGE, "max_large_messages": 1}
    with (
        Sink() as sink,
        Phigate(tmp_path, delivery=via_sink(sink), limits=limits, metrics=metrics) as gw,
    ):
        secret = gw.add_principal("ehr1", "clinic.example.org")
        first, second, small = (gw.client("ehr1", secret) for _ in range(3))
        first_data = large_message("first")
        # The first message goes past the size and takes the one turn, then pauses.
        open_data(first)
        first.send(first_data[: 2 * LARGE])

        # The second sends all of its content; it waits at the size for the turn.
        replies: dict[str, tuple[int, bytes]] = {}
        second_data = large_message("second")

        def send_second() -> None:
            open_data(second)
            second.send(second_data + b".\r\n")
            replies["second"] = second.getreply()

        sender = threading.Thread(target=send_second, daemon=True)
        sender.start()
        sender.join(2.0)
        assert "second" not in replies  # held while the first holds the turn

        # A small message never needs a turn.
        small.sendmail(SENDER, [RECIPIENT], message(SENDER, RECIPIENT, "small", "no phi"))
        assert "second" not in replies

        first.send(first_data[2 * LARGE :] + b".\r\n")
        assert first.getreply()[0] == 250
        sender.join(20.0)
        assert replies["second"][0] == 250
        assert large_waits(gw) == 1.0
        for client in (first, second, small):
            client.quit()
        delivered = sink.wait_for(3)
        bodies = {
            str(parsed["Subject"]): parsed.get_content()
            for parsed in (email.message_from_bytes(m.content, policy=default) for m in delivered)
        }
        assert sorted(bodies) == ["first", "second", "small"]
        # Every message arrives whole.
        assert bodies["first"] == bodies["second"] and bodies["first"].count("\n") == 8000
