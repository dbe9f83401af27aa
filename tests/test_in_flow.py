"""delivery.in_flow_delay: while delivery is behind, a new message waits for a delivery
to finish (at most the delay) before its 250, so a sender slows to the delivery rate.

Real parts: a phigate server with one delivery worker relaying to an SMTP sink that
holds each message until the test lets it through.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session
from harness import Phigate, Sink, SinkHandler, message, via_sink, wait_until

SENDER = "ehr@clinic.example.org"
RECIPIENT = "doctor@partner.example.com"


class HeldSink(SinkHandler):
    """Accepts each message only once `gate` is set (bounded: 30 s)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.arrived = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.arrived += 1
        deadline = time.monotonic() + 30
        while not self.gate.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return await super().handle_DATA(server, session, envelope)


def _timed_send(gw: Phigate, secret: str, n: int) -> float:
    client = gw.client("ehr1", secret)
    try:
        started = time.monotonic()
        client.sendmail(SENDER, [RECIPIENT], message(SENDER, RECIPIENT, f"m{n}", "no phi"))
        return time.monotonic() - started
    finally:
        client.quit()


def _gateway(tmp_path: Path, sink: Sink, delay: float) -> Phigate:
    tmp_path.mkdir(exist_ok=True)
    return Phigate(
        tmp_path, delivery=via_sink(sink, tls="none", workers=1, in_flow_delay=delay)
    ).start()


def test_a_sender_waits_for_delivery_to_catch_up(tmp_path: Path) -> None:
    handler = HeldSink()
    with Sink(handler=handler) as sink:
        gw = _gateway(tmp_path, sink, delay=8.0)
        with gw:
            secret = gw.add_principal("ehr1", "clinic.example.org")
            # The one worker takes the first message and is held at the sink; the
            # second is claimed and waits for the worker: delivery is behind.
            assert _timed_send(gw, secret, 1) < 2
            wait_until(lambda: handler.arrived == 1, 10)
            assert _timed_send(gw, secret, 2) < 2
            time.sleep(0.5)  # the dispatcher finds no free worker
            # The third message waits for a delivery to finish, not for the delay.
            threading.Timer(1.5, handler.gate.set).start()
            waited = _timed_send(gw, secret, 3)
            assert 1.2 < waited < 6, f"waited {waited:.2f} s"
            sink.wait_for(3)
        assert '"ended_by"' not in gw.log_text()  # metrics are not logged


def test_the_wait_is_bounded_and_can_be_turned_off(tmp_path: Path) -> None:
    handler = HeldSink()
    with Sink(handler=handler) as sink:
        gw = _gateway(tmp_path / "bounded", sink, delay=1.0)
        with gw:
            secret = gw.add_principal("ehr1", "clinic.example.org")
            _timed_send(gw, secret, 1)
            wait_until(lambda: handler.arrived == 1, 10)
            _timed_send(gw, secret, 2)
            time.sleep(0.5)
            waited = _timed_send(gw, secret, 3)  # nothing finishes: the delay runs out
            assert 0.9 < waited < 3
            handler.gate.set()
            sink.wait_for(3)
    handler = HeldSink()
    with Sink(handler=handler) as sink:
        gw = _gateway(tmp_path / "off", sink, delay=0.0)
        with gw:
            secret = gw.add_principal("ehr1", "clinic.example.org")
            _timed_send(gw, secret, 1)
            wait_until(lambda: handler.arrived == 1, 10)
            _timed_send(gw, secret, 2)
            time.sleep(0.5)
            assert _timed_send(gw, secret, 3) < 0.9
            handler.gate.set()
            sink.wait_for(3)
