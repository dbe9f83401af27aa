"""Delivery-status webhooks against a real HTTPS receiver on loopback.

A phigate server relays to an SMTP sink; its webhooks go to a threaded HTTPS
server with a certificate of a test CA (webhooks.ca_file). Signatures are
checked with the `standardwebhooks` package, an implementation of the
specification that is not ours. Canary subject and body must reach no
webhook body, outbox row or log line.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from certs import make_certs, server_context
from harness import Phigate, Sink, message, via_sink, wait_until
from https_server import HttpsServer, Request
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway import datadir
from gateway.config import WebhooksConfig
from gateway.settings_loader import load_settings
from gateway.store.schema import webhook_deliveries
from gateway.webhooks import signing, urls
from gateway.webhooks.sender import Sender, client_context
from gateway.webhooks.urls import UnsafeUrl

CANARY_SUBJECT = "canary-hook-5q2 Oncology referral for Pat Example"
CANARY_BODY = "canary-hook-5q2 body MRN 00981 SSN 123-45-6789"
LOOPBACK = ["127.0.0.0/8"]


@dataclass
class Site:
    gw: Phigate
    web: HttpsServer
    sink: Sink

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.web.port}{path}"

    def subscribe(self, name: str, principal: str, path: str, kinds: str) -> str:
        added = self.gw.json(
            "webhook", "add", name, "--principal", principal, "--url", self.url(path),
            "--events", kinds,
        )  # fmt: skip
        return str(added["secret"])

    def send(self, principal: str, secret: str, rcpt: str) -> None:
        sender = f"billing@{principal}.example"
        raw = message(sender, rcpt, CANARY_SUBJECT, CANARY_BODY)
        assert self.gw.submit(secret, sender, [rcpt], raw, user=principal) == {}

    def state(self, webhook_id: str) -> object:
        return next(r["state"] for r in self.outbox_rows() if r["webhook_id"] == webhook_id)

    def outbox_rows(self) -> list[dict[str, object]]:
        db = datadir.open_database(load_settings(self.gw.config))
        try:
            with db.reading() as conn:
                return [dict(r) for r in conn.execute(select(webhook_deliveries)).mappings()]
        finally:
            db.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("webhooks")
    certs = make_certs(tmp)
    with HttpsServer(server_context(certs["good"], certs["good_key"])) as web, Sink() as sink:
        gw = Phigate(
            tmp,
            delivery=via_sink(sink),
            webhooks={
                "allowed_networks": LOOPBACK,
                "ca_file": str(certs["ca"]),
                "poll_interval": 0.1,
                "retry_initial": 0.2,
                "retry_max_interval": 0.4,
                "retry_jitter": 0.0,
                "retry_for": 2.0,
            },
        )
        with gw:
            yield Site(gw, web, sink)


def _verified(secret: str, request: Request) -> dict[str, object]:
    """The body, once the signature verified as a receiver would check it."""
    document = Webhook(secret).verify(request.body, request.headers)
    assert isinstance(document, dict)
    return document


def test_accepted_and_delivered_arrive_signed_and_without_content(site: Site) -> None:
    password = site.gw.add_principal("ehr1", "ehr1.example")
    secret = site.subscribe("status", "ehr1", "/status", "accepted,delivered")
    site.web.serve("/status", status=204)
    site.send("ehr1", password, "pat@clinic.example")
    wait_until(lambda: len(site.web.posted("/status")) >= 2)
    posted = site.web.posted("/status")
    bodies = [_verified(secret, r) for r in posted]
    assert sorted(b["type"] for b in bodies) == ["message.accepted", "message.delivered"]
    for body in bodies:
        data = body["data"]
        assert isinstance(data, dict)
        assert data["recipient"] == "pat@clinic.example"
        assert set(data) == {"queue_id", "recipient", "status", "code"}
    assert len({r.headers["webhook-id"] for r in posted}) == 2
    # A signature under another secret, or over another body, does not verify.
    other = signing.secret_text(signing.new_secret())
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(posted[0].body, posted[0].headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(posted[0].body + b" ", posted[0].headers)
    wait_until(lambda: {r["state"] for r in site.outbox_rows()} == {"sent"})
    rows = site.outbox_rows()
    everything = b"".join(r.body for r in posted) + json.dumps(rows).encode()
    everything += site.gw.log_text().encode()
    assert b"canary-hook-5q2" not in everything
    assert b"SSN" not in b"".join(r.body for r in posted)
    # The secret is kept sealed: the database does not hold it.
    listed = site.gw.json("webhook", "ls")
    assert [w["sent"] for w in listed if w["name"] == "status"] == [2]
    assert secret not in json.dumps(listed)


def test_a_receiver_failing_twice_gets_the_event_three_times_then_never_again(
    site: Site,
) -> None:
    password = site.gw.add_principal("ehr2", "ehr2.example")
    secret = site.subscribe("flaky", "ehr2", "/flaky", "delivered")
    site.web.serve("/flaky", status=200)
    site.web.answer_next("/flaky", 500, 500)
    site.send("ehr2", password, "pat2@clinic.example")
    wait_until(lambda: len(site.web.posted("/flaky")) >= 3)
    posted = site.web.posted("/flaky")
    wait_until(lambda: site.state(posted[0].headers["webhook-id"]) == "sent")
    assert len({r.headers["webhook-id"] for r in posted}) == 1  # one event, tried 3 times
    assert len({r.body for r in posted}) == 1
    for request in posted:
        assert _verified(secret, request)["type"] == "message.delivered"
    # Sent means done: two more retry intervals bring no repeat.
    site.web.answer_next("/flaky")
    asyncio.run(asyncio.sleep(1.0))
    assert len(site.web.posted("/flaky")) == 3
    [row] = [r for r in site.outbox_rows() if r["webhook_id"] == posted[0].headers["webhook-id"]]
    assert (row["state"], row["attempts"], row["last_status"]) == ("sent", 3, 200)


def test_a_receiver_always_failing_is_dead_lettered_and_retry_sends_again(site: Site) -> None:
    password = site.gw.add_principal("ehr3", "ehr3.example")
    secret = site.subscribe("down", "ehr3", "/down", "accepted")
    site.web.serve("/down", status=503)
    site.send("ehr3", password, "pat3@clinic.example")
    wait_until(lambda: bool(site.web.posted("/down")))
    webhook_id = site.web.posted("/down")[0].headers["webhook-id"]
    wait_until(lambda: site.state(webhook_id) == "failed", timeout=20)
    [dead] = site.gw.json("webhook", "ls", "--failed")
    assert (dead["webhook"], dead["kind"], dead["last_status"]) == ("down", "accepted", 503)
    tries = len(site.web.posted("/down"))
    assert tries == dead["attempts"] >= 3
    table = site.gw.cli("webhook", "ls", "--failed").stdout
    assert f"{dead['id']:>8} down" in table
    site.web.serve("/down", status=200)
    done = site.gw.cli("webhook", "retry", str(dead["id"]))
    assert "queued again" in done.stdout
    wait_until(lambda: len(site.web.posted("/down")) == tries + 1)
    wait_until(lambda: site.state(webhook_id) == "sent")
    last = site.web.posted("/down")[-1]
    assert last.headers["webhook-id"] == dead["webhook_id"]
    assert _verified(secret, last)["type"] == "message.accepted"
    # Retrying what is no longer a dead letter says so.
    again = site.gw.cli("webhook", "retry", str(dead["id"]), check=False)
    assert again.returncode == 2 and "webhook ls --failed" in again.stderr
    audit = site.gw.json("audit", "search", "--event", "webhook")
    assert {e["result"] for e in audit["events"]} >= {"added", "retried"}


def test_test_event_rm_and_refused_urls_at_add(site: Site) -> None:
    site.gw.add_principal("ehr4", "ehr4.example")
    secret = site.subscribe("probe", "ehr4", "/probe", "all")
    site.web.serve("/probe", status=202)
    shown = site.gw.cli("webhook", "test", "probe")
    assert "answered 202" in shown.stdout
    [request] = site.web.posted("/probe")
    body = _verified(secret, request)
    assert body["type"] == "webhook.test" and body["data"] == {"webhook": "probe"}
    site.web.serve("/probe", status=404)
    failing = site.gw.cli("webhook", "test", "probe", check=False)
    assert failing.returncode == 1 and "answered 404" in failing.stderr
    for url, why in (
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://10.20.30.40/hook", "private"),
    ):
        refused = site.gw.cli(
            "webhook", "add", "bad", "--principal", "ehr4", "--url", url, "--events", "all",
            check=False,
        )  # fmt: skip
        assert refused.returncode == 2, url
        assert why in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    unknown = site.gw.cli(
        "webhook", "add", "bad", "--principal", "ehr4", "--url", site.url("/x"),
        "--events", "delivered,opened", check=False,
    )  # fmt: skip
    assert unknown.returncode == 2 and "unknown event kind opened" in unknown.stderr
    site.gw.cli("webhook", "rm", "probe")
    assert "probe" not in [w["name"] for w in site.gw.json("webhook", "ls")]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://[fd00:ec2::254]/", "metadata"),
        ("https://[::ffff:169.254.169.254]/", "metadata"),
        ("http://10.20.30.40/hook", "private"),
        ("http://8.8.8.8/hook", "in clear"),
        ("ftp://hooks.example/", "https://"),
        ("https://user:pw@127.0.0.1/", "password"),
        ("https:///hook", "names no host"),
        ("https://hooks.example/#top", "fragment"),
    ],
)
def test_urls_refused_when_added(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrl, match=why):
        urls.checked(url, urls.networks([]))


@pytest.mark.parametrize(
    ("address", "allowed", "scheme", "refused"),
    [
        ("169.254.169.254", ["0.0.0.0/0"], "https", True),  # never, whatever is allowed
        ("::ffff:169.254.169.254", ["0.0.0.0/0"], "https", True),
        ("fd00:ec2::254", ["::/0"], "https", True),
        ("fe80::1", ["::/0"], "https", True),
        ("127.0.0.1", [], "https", True),
        ("10.1.2.3", [], "https", True),
        ("10.1.2.3", ["10.0.0.0/8"], "http", False),
        ("8.8.8.8", [], "https", False),
        ("8.8.8.8", [], "http", True),  # clear text to the internet
    ],
)
def test_which_addresses_a_webhook_may_reach(
    address: str, allowed: list[str], scheme: str, refused: bool
) -> None:
    reason = urls.refusal(ipaddress.ip_address(address), scheme, urls.networks(allowed))
    assert (reason is not None) == refused


def test_the_sender_checks_the_address_when_it_connects(tmp_path: Path) -> None:
    """Checked at each connection, not only at `add`: a URL that reaches the sender
    (a name that now resolves elsewhere, a row changed in the database) is refused
    before any connection, and plain http goes only into allowed_networks."""
    certs = make_certs(tmp_path)
    config = WebhooksConfig(allowed_networks=[], timeout=2.0)
    secret = signing.new_secret()

    async def post(cfg: WebhooksConfig, url: str) -> str | None:
        sender = Sender(cfg, client_context(cfg, certs["ca"]))
        try:
            outcome = await sender.post(url, secret, "msg_1", "{}")
        finally:
            await sender.close()
        return outcome.error if not outcome.ok else None

    with HttpsServer(server_context(certs["good"], certs["good_key"])) as web:
        web.serve("/hook", status=200)
        loopback = f"https://127.0.0.1:{web.port}/hook"
        assert "refused" in (asyncio.run(post(config, loopback)) or "")
        assert "refused" in (asyncio.run(post(config, "https://169.254.169.254/")) or "")
        assert "refused" in (asyncio.run(post(config, "https://localhost:1/")) or "")
        assert web.count() == 0
        allowed = config.model_copy(update={"allowed_networks": LOOPBACK})
        assert asyncio.run(post(allowed, loopback)) is None
        assert web.count() == 1
    # A certificate the trust store does not know is refused.
    (tmp_path / "other").mkdir()
    impostor = make_certs(tmp_path / "other")
    with HttpsServer(server_context(impostor["impostor"], impostor["impostor_key"])) as web:
        error = asyncio.run(post(allowed, f"https://127.0.0.1:{web.port}/hook"))
        assert error is not None and "certificate" in error, error


def test_the_signature_is_the_standard_one() -> None:
    """Signed by us, verified by the reference implementation and by the standard-library
    verifier docs/webhooks.md shows receivers."""
    secret = signing.new_secret()
    body = b'{"type":"message.delivered"}'
    headers = dict(signing.headers(secret, "msg_7_0_1", int(time.time()), body))
    text = signing.secret_text(secret)
    assert Webhook(text).verify(body, headers) == {"type": "message.delivered"}
    docs = (Path(__file__).resolve().parent.parent / "docs" / "webhooks.md").read_text()
    example: dict[str, Any] = {}
    exec(docs.split("```python\n", 1)[1].split("```", 1)[0], example)
    assert example["verify"](text, headers, body)
    assert not example["verify"](text, headers, body + b" ")
    other = signing.secret_text(signing.new_secret())
    assert not example["verify"](other, headers, body)
    stale = dict(signing.headers(secret, "msg_7_0_1", int(time.time()) - 600, body))
    assert not example["verify"](text, stale, body)
