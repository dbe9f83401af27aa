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


def _third_message_wait(tmp_path: Path, delay: float, release_after: float | None) -> float:
    """Seconds the third message takes to be accepted while delivery is behind: the
    one worker is held at the sink with the first message and the second waits for
    it. The sink lets mail through `release_after` seconds into the third message's
    submission (None: only after it)."""
    tmp_path.mkdir(exist_ok=True)
    handler = HeldSink()
    with Sink(handler=handler) as sink:
        delivery = via_sink(sink, tls="none", workers=1, in_flow_delay=delay)
        with Phigate(tmp_path, delivery=delivery) as gw:
            secret = gw.add_principal("ehr1", "clinic.example.org")
            assert _timed_send(gw, secret, 1) < 2
            wait_until(lambda: handler.arrived == 1, 10)
            assert _timed_send(gw, secret, 2) < 2
            time.sleep(0.5)  # the dispatcher finds no free worker
            if release_after is not None:
                threading.Timer(release_after, handler.gate.set).start()
            waited = _timed_send(gw, secret, 3)
            handler.gate.set()
            sink.wait_for(3)  # nothing lost either way
    return waited


def test_a_sender_waits_for_a_delivery_to_finish(tmp_path: Path) -> None:
    waited = _third_message_wait(tmp_path, delay=8.0, release_after=1.5)
    assert 1.2 < waited < 6, f"waited {waited:.2f} s"  # for the delivery, not the delay


def test_the_wait_is_bounded(tmp_path: Path) -> None:
    waited = _third_message_wait(tmp_path, delay=1.0, release_after=None)
    assert 0.9 < waited < 3, f"waited {waited:.2f} s"


def test_the_wait_can_be_turned_off(tmp_path: Path) -> None:
    waited = _third_message_wait(tmp_path, delay=0.0, release_after=None)
    assert waited < 0.9, f"waited {waited:.2f} s"
