"""What one unauthenticated client may take from everyone else, tried from outside.

A running `phigate serve` with a submission listener (STARTTLS + AUTH) and a
public one (port-25 style: no TLS required, unsubscribe mail without AUTH).
Clients flood the public listener with idle and keep-alive sessions and with
pipelined refusals; the submission listener must keep serving, sessions must
end at their limits with a 421, and the audit trail must stay small.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import re
import smtplib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import (
    Phigate,
    RawClient,
    Sink,
    audit_mark,
    audit_since,
    free_port,
    message,
    tls_client,
    via_sink,
    wait_until,
)

from gateway.clients import client_key
from gateway.config import LimitsConfig
from gateway.smtp.auth import AuthGuard
from gateway.smtp.limits import ConnectionLimiter

PRINCIPAL = "crm"
DOMAIN = "clinic.example.org"
SENDER = "crm@clinic.example.org"
RECIPIENT = "dr@partner.test"
# Marks marketing mail, so that it leaves with a mailto: unsubscribe address.
POLICY = """\
version: 1
defaults:
  action: deliver
  via: [standard]
  subject: keep
categories:
  - id: marked
    when: {category_header: marketing}
    category: marketing
"""


@dataclass
class Server:
    gw: Phigate
    secret: str
    public: int  # the port-25 style listener


def two_listeners(
    tmp: Path, public_limits: dict[str, Any] | None = None, **sections: Any
) -> Server:
    """Submission on gw.port, and a public listener taking unsubscribe mail without AUTH."""
    policy_dir = tmp / "policy"
    policy_dir.mkdir()
    (policy_dir / "policy.yaml").write_text(POLICY)
    gw = Phigate(tmp, policy_dir=str(policy_dir), **sections)
    public = free_port()
    listener: dict[str, Any] = {
        "name": "inbound",
        "address": f"127.0.0.1:{public}",
        "tls": "none",
        "accept_unsubscribe": True,
    }
    if public_limits is not None:
        listener["limits"] = public_limits
    gw.settings["listeners"].append(listener)
    gw.config.write_text(yaml.safe_dump(gw.settings))
    secret = gw.add_principal(PRINCIPAL, DOMAIN)
    return Server(gw, secret, public)


def submit(server: Server, subject: str) -> bytes:
    """An authenticated submission on the submission listener; returns the 250 text."""
    with tls_client(server.gw.port) as client:
        client.login(PRINCIPAL, server.secret)
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(RECIPIENT)[0] == 250
        code, reply = client.data(message(SENDER, RECIPIENT, subject, "hello"))
    assert code == 250 and b"queued as" in reply, (code, reply)
    return reply


# --- connection slots ----------------------------------------------------------------------


def test_a_flooded_public_listener_leaves_submission_serving(tmp_path: Path) -> None:
    server = two_listeners(tmp_path, limits={"max_connections": 8, "max_connections_per_ip": 8})
    with server.gw, contextlib.ExitStack() as stack:
        flood = [
            stack.enter_context(contextlib.closing(RawClient(server.public))) for _ in range(8)
        ]
        assert all(c.reply().startswith(b"220 ") for c in flood)
        # Half keep their sessions alive with NOOP, half just sit there.
        assert all(c.command("NOOP").startswith(b"250") for c in flood[:4])
        late = RawClient(server.public)
        assert late.reply() == b"421 4.7.0 too many connections; try again later\r\n"
        late.close()
        # The submission listener has slots of its own.
        submit(server, "while flooded")
        assert all(c.command("NOOP").startswith(b"250") for c in flood)


def test_a_listener_overrides_the_connection_limits(tmp_path: Path) -> None:
    server = two_listeners(
        tmp_path,
        public_limits={"max_connections": 5, "max_connections_per_ip": 2},
        limits={"max_connections": 50, "max_connections_per_ip": 50},
    )
    turned_away = b"421 4.7.0 too many connections from your address; try again later\r\n"
    with server.gw, contextlib.ExitStack() as stack:
        mark = audit_mark(server.gw)
        for source in ("127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2"):
            client = stack.enter_context(contextlib.closing(RawClient(server.public, source)))
            assert client.reply().startswith(b"220 ")
        for _ in range(20):  # a connection flood past the limit
            third = RawClient(server.public)
            assert third.reply() == turned_away
            third.close()
        # One audit row for the client, not one per connection (written after the 421).
        wait_until(lambda: bool(audit_since(server.gw, mark)))
        # The submission listener keeps the top-level limits: 127.0.0.1 is welcome there.
        sessions = [stack.enter_context(tls_client(server.gw.port)) for _ in range(3)]
        assert all(s.noop()[0] == 250 for s in sessions)
        rows = audit_since(server.gw, mark)
        assert [(e["result"], e["code"], e["client_ip"]) for e in rows] == [
            ("connect", 421, "127.0.0.1")
        ]


def ipv6_loopback_port() -> int | None:
    """A free port on ::1, or None where this host has no IPv6 loopback."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
            return int(sock.getsockname()[1])
    except OSError:
        return None


def test_an_ipv6_listener_counts_its_clients(tmp_path: Path) -> None:
    port = ipv6_loopback_port()
    if port is None:
        pytest.skip("no IPv6 loopback on this host")
    gw = Phigate(tmp_path)
    gw.settings["listeners"].append(
        {
            "name": "v6",
            "address": f"[::1]:{port}",
            "tls": "none",
            "accept_unsubscribe": True,
            "limits": {"max_connections_per_ip": 2},
        }
    )
    gw.config.write_text(yaml.safe_dump(gw.settings))
    with gw, contextlib.ExitStack() as stack:

        def greeting() -> bytes:
            sock = stack.enter_context(socket.create_connection(("::1", port), timeout=10))
            return stack.enter_context(sock.makefile("rb")).readline()

        assert greeting().startswith(b"220 ")
        assert greeting().startswith(b"220 ")
        assert (
            greeting() == b"421 4.7.0 too many connections from your address; try again later\r\n"
        )


def test_clients_are_counted_per_ipv4_address_and_ipv6_64() -> None:
    # Loopback offers a single IPv6 address, so the /64 grouping is checked here.
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff:ffff:ffff:fffe")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("192.0.2.7") != client_key("192.0.2.8")
    limiter = ConnectionLimiter(LimitsConfig(max_connections=10, max_connections_per_ip=2))
    assert limiter.admit("2001:db8::1") is None
    assert limiter.admit("2001:db8::2") is None
    assert limiter.admit("2001:db8::3") == "too many connections from your address; try again later"
    assert limiter.admit("2001:db8:0:1::1") is None  # the next /64 is another client
    limiter.release("2001:db8::1")
    assert limiter.admit("2001:db8::ffff") is None


def test_auth_lockout_counts_an_ipv6_64_as_one_client() -> None:
    guard = AuthGuard(LimitsConfig(auth_lockout_after=5, auth_backoff_base=0))

    async def scenario() -> None:
        for host in range(5):  # a new address of the same /64 for every guess
            await guard.failure("ehr1", f"2001:db8::{host + 1}")
        assert await guard.locked("ehr1", "2001:db8::99")
        assert await guard.locked("billing", "2001:db8::99")
        assert not await guard.locked("ehr1", "2001:db8:0:1::1")
        assert not await guard.locked("ehr1", "192.0.2.7")

    asyncio.run(scenario())


# --- session length and commands -----------------------------------------------------------


def test_noop_keepalives_end_at_the_session_time_limit(tmp_path: Path) -> None:
    server = two_listeners(tmp_path, public_limits={"idle_timeout": 1.5, "max_session_seconds": 2})
    with server.gw:
        client = RawClient(server.public)
        assert client.reply().startswith(b"220 ")
        started = time.monotonic()
        replies = []
        while time.monotonic() - started < 6:  # well past the idle timeout, every time
            replies.append(client.command("NOOP"))
            if not replies[-1].startswith(b"250"):
                break
            time.sleep(0.3)
        elapsed = time.monotonic() - started
        assert replies[-1] == b"421 4.4.2 Session time limit reached; reconnect to go on\r\n"
        assert 1.5 < elapsed < 4, (elapsed, replies)
        assert client.closed()
        client.close()
        # An idle session is closed at the limit too (a 421, not a silent idle close).
        idle = RawClient(server.public)
        assert idle.reply().startswith(b"220 ")
        assert idle.command("NOOP").startswith(b"250")
        time.sleep(0.6)
        assert idle.command("NOOP").startswith(b"250")
        time.sleep(0.6)
        assert idle.command("NOOP").startswith(b"250")
        assert idle.reply() == b"421 4.4.2 Session time limit reached; reconnect to go on\r\n"
        idle.close()
        submit(server, "after the keep-alives")


def test_junk_commands_end_the_session_at_their_limit(tmp_path: Path) -> None:
    server = two_listeners(tmp_path, public_limits={"max_session_junk_commands": 10})
    with server.gw:
        client = RawClient(server.public)
        assert client.reply().startswith(b"220 ")
        assert client.command("EHLO flood.test").startswith(b"250 ")
        for verb in ["NOOP", "RSET"] * 4 + ["NOOP"]:
            assert client.command(verb).startswith(b"250"), verb
        assert client.command("NOOP") == (
            b"421 4.7.0 Too many commands that send no mail "
            b"(NOOP, RSET, VRFY, EXPN, HELP, HELO, EHLO); closing\r\n"
        )
        assert client.closed()
        client.close()


# --- refusals: counted, summarised, and an end to the session -------------------------------


def test_pipelined_refusals_drop_the_session_and_write_few_audit_rows(tmp_path: Path) -> None:
    server = two_listeners(tmp_path)
    gw = server.gw
    with gw:
        mark = audit_mark(gw)
        # Few enough to sit in the server's buffer: every reply is read back exactly.
        client = RawClient(server.public)
        assert client.reply().startswith(b"220 ")
        assert client.command("EHLO flood.test").startswith(b"250 ")
        rcpts = "".join(f"RCPT TO:<victim{i}@partner.test>\r\n" for i in range(25))
        client.sock.sendall(b"MAIL FROM:<x@flood.test>\r\n" + rcpts.encode())
        assert client.reply().startswith(b"250 ")  # MAIL: whoever asks, only opt-outs follow
        for _ in range(20):
            assert client.reply().startswith(b"550 5.7.1 Relaying denied")
        assert client.reply() == b"421 4.7.0 Too many refused commands; closing\r\n"
        assert client.closed()
        client.close()

        # 3,000 at once: the session ends after 20, and the audit trail barely grows.
        flood = RawClient(server.public)
        assert flood.reply().startswith(b"220 ")
        rcpts = "".join(f"RCPT TO:<victim{i}@partner.test>\r\n" for i in range(3000))
        payload = b"EHLO flood.test\r\nMAIL FROM:<x@flood.test>\r\n" + rcpts.encode()
        sender = threading.Thread(target=_send_ignoring_reset, args=(flood.sock, payload))
        sender.start()
        replies = []
        while reply := flood.reply():
            replies.append(reply)
        sender.join(10)
        flood.close()
        assert len([r for r in replies if r.startswith(b"550 ")]) <= 20, len(replies)

        def summaries() -> list[dict[str, Any]]:
            return [e for e in audit_since(gw, mark) if e["result"] == "session"]

        wait_until(lambda: len(summaries()) == 2, timeout=5, interval=0.1)
        rows = audit_since(gw, mark)
        assert len(rows) <= 2 * (5 + 1), rows  # five in full and one summary per session
        for summary in summaries():
            assert summary["code"] == 421 and summary["client_ip"] == "127.0.0.1"
            assert summary["detail"] == (
                "20 refusals (5 audited one by one): rcpt 550 x20; "
                "session closed at max_session_refusals"
            )
        submit(server, "after the flood")


def _send_ignoring_reset(sock: socket.socket, payload: bytes) -> None:
    # The server closes in the middle of the flood: that is the point.
    with contextlib.suppress(OSError):
        sock.sendall(payload)


def test_refusals_of_a_session_ending_normally_are_summarised(tmp_path: Path) -> None:
    server = two_listeners(tmp_path)
    gw = server.gw
    with gw:
        mark = audit_mark(gw)
        with smtplib.SMTP("127.0.0.1", server.public, timeout=10) as client:
            client.ehlo()
            assert client.mail("x@flood.test")[0] == 250
            for i in range(8):
                assert client.rcpt(f"victim{i}@partner.test")[0] == 550
        summary = None

        def summarised() -> bool:
            nonlocal summary
            found = [e for e in audit_since(gw, mark) if e["result"] == "session"]
            summary = found[0] if found else None
            return summary is not None

        wait_until(summarised, timeout=5, interval=0.1)
        assert summary is not None
        assert summary["code"] is None
        assert summary["detail"] == "8 refusals (5 audited one by one): rcpt 550 x8"
        in_full = [e for e in audit_since(gw, mark) if e["result"] == "rcpt"]
        assert [e["recipients"] for e in in_full] == ["[]"] * 5


# --- unsubscribe-only sessions --------------------------------------------------------------


@pytest.fixture
def unsubscribe_address(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """A server and a live mailto: unsubscribe address, from a marketing mail it relayed."""
    with Sink() as sink:
        server = two_listeners(tmp_path, delivery=via_sink(sink))
        gw = server.gw
        to = "patient@home.example"
        gw.cli("consent", "grant", to, "--purpose", "marketing", "--source", "ehr")
        with gw:
            raw = b"X-Phigate-Category: marketing\r\n" + message(
                SENDER, to, "Flu clinic", "Walk in."
            )
            assert gw.submit(server.secret, SENDER, [to], raw, user=PRINCIPAL) == {}
            sent = email.message_from_bytes(
                sink.wait_for(1)[0].content, policy=email.policy.default
            )
            mailto = re.findall(r"<mailto:([^>]+)>", str(sent["List-Unsubscribe"]))[0]
            yield server, mailto


def test_unsubscribe_mail_over_the_small_limit_gets_552(
    unsubscribe_address: tuple[Server, str],
) -> None:
    server, mailto = unsubscribe_address
    with smtplib.SMTP("127.0.0.1", server.public, timeout=10) as client:
        client.ehlo()
        assert client.mail("someone@home.example")[0] == 250
        assert client.rcpt(mailto)[0] == 250
        big = b"Subject: unsubscribe\r\n\r\n" + (b"x" * 998 + b"\r\n") * 70  # about 70 KiB
        code, text = client.data(big)
        assert code == 552 and text.startswith(b"5.3.4 "), (code, text)
        # A real opt-out, a few lines, still works on the same session.
        assert client.mail("someone@home.example")[0] == 250
        assert client.rcpt(mailto)[0] == 250
        assert client.data(b"Subject: unsubscribe\r\n\r\nstop\r\n")[0] == 250
    # The authenticated listener keeps the full size.
    submit(server, "x" * 100)
