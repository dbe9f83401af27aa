"""Refusals over real sockets: exact reply codes, audit events, and a server that stays up.

Each test talks to a running `phigate serve` with smtplib (or a raw socket
where smtplib would tidy up what is being tested), checks the reply code, the
enhanced status code and the text, finds the matching row in `audit_events`,
and then checks that the server still greets and still accepts a valid
submission.
"""

from __future__ import annotations

import base64
import contextlib
import re
import smtplib
import socket
import ssl
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import (
    Phigate,
    audit_mark,
    audit_since,
    connect,
    free_port,
    insecure_context,
    message,
    tls_client,
    wait_until,
)

PRINCIPAL = "ehr1"
DOMAIN = "clinic.example.org"
SENDER = "ehr@clinic.example.org"
RECIPIENT = "dr@partner.test"


@dataclass
class Server:
    gw: Phigate
    secret: str


# --- helpers -------------------------------------------------------------------------------


def find_event(events: list[dict[str, Any]], **want: Any) -> dict[str, Any]:
    for row in events:
        if all(row[key] == value for key, value in want.items()):
            return row
    raise AssertionError(f"no audit event with {want} among {events}")


def assert_reply(reply: tuple[int, bytes], code: int, enhanced: str, text: str) -> None:
    got_code, got_text = reply[0], reply[1].decode("ascii", "replace")
    assert got_code == code, reply
    assert got_text.startswith(f"{enhanced} "), reply
    assert text in got_text, reply


def plain_auth(user: str, secret: str) -> str:
    return "PLAIN " + base64.b64encode(f"\0{user}\0{secret}".encode()).decode()


def read_line(sock: socket.socket) -> bytes:
    """One reply line, or whatever arrived before the peer closed."""
    data = b""
    while not data.endswith(b"\r\n") and len(data) < 4096:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def raw_greeting(port: int, source: str = "127.0.0.1") -> bytes:
    """The first line a new connection gets."""
    with socket.create_connection(
        ("127.0.0.1", port), timeout=5, source_address=(source, 0)
    ) as sock:
        return read_line(sock)


def refused_greeting(port: int, source: str = "127.0.0.1") -> tuple[bytes, bool]:
    """(greeting line, whether the server then closed the connection)."""
    with socket.create_connection(
        ("127.0.0.1", port), timeout=5, source_address=(source, 0)
    ) as sock:
        greeting = read_line(sock)
        try:
            closed = sock.recv(100) == b""
        except ConnectionResetError:
            closed = True
        except TimeoutError:
            closed = False
        return greeting, closed


def queued_senders(gw: Phigate) -> set[str]:
    return {str(row["sender"]) for row in gw.json("queue", "ls", "--all")}


def assert_healthy(server: Server, user: str = PRINCIPAL, source: str = "127.0.0.1") -> None:
    """New connections get 220, a valid submission is queued, and nothing crashed."""
    gw = server.gw
    assert gw.proc is not None and gw.proc.poll() is None, "phigate exited"
    greeting = raw_greeting(gw.port, source)
    assert greeting.startswith(b"220 "), greeting
    with tls_client(gw.port, source) as client:
        client.login(user, server.secret)
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(RECIPIENT)[0] == 250
        code, reply = client.data(message(SENDER, RECIPIENT, "health", "still fine"))
        assert code == 250 and b"queued as" in reply, (code, reply)
    assert "Traceback" not in gw.log_text()


def add_listeners(gw: Phigate, listeners: list[dict[str, Any]], **sections: Any) -> None:
    """Rewrite the config with these listeners (the first must stay on gw.port)."""
    gw.settings["listeners"] = listeners
    gw.settings.update(sections)
    gw.config.write_text(yaml.safe_dump(gw.settings))


# --- one server with default limits: auth and envelope refusals ------------------------------


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Lockout high enough that the failures provoked here never lock 127.0.0.1 out.
    gw = Phigate(tmp_path_factory.mktemp("default"), limits={"auth_lockout_after": 100})
    secret = gw.add_principal(PRINCIPAL, DOMAIN)
    with gw:
        yield Server(gw, secret)


def test_wrong_password_gets_535_and_is_audited(default_server: Server) -> None:
    gw = default_server.gw
    mark = audit_mark(gw)
    with tls_client(gw.port) as client:
        assert_reply(
            client.docmd("AUTH", plain_auth(PRINCIPAL, "not-the-secret")),
            535,
            "5.7.8",
            "Authentication credentials invalid",
        )
        # The session survives the failure: the right secret works on the same connection.
        assert client.docmd("AUTH", plain_auth(PRINCIPAL, default_server.secret))[0] == 235
    events = audit_since(gw, mark)
    failed = find_event(events, event="auth", result="failed")
    assert failed["principal"] == PRINCIPAL
    assert failed["client_ip"] == "127.0.0.1"
    assert failed["code"] == 535
    assert "not-the-secret" not in repr(events)
    find_event(events, event="auth", result="ok", principal=PRINCIPAL, code=235)
    assert_healthy(default_server)


def test_auth_before_starttls_is_refused_and_not_advertised(default_server: Server) -> None:
    gw = default_server.gw
    mark = audit_mark(gw)
    with connect(gw.port) as client:
        code, _ = client.ehlo()
        assert code == 250
        assert "starttls" in client.esmtp_features
        assert "auth" not in client.esmtp_features
        assert "enhancedstatuscodes" in client.esmtp_features
        # Even the right secret is refused in clear text.
        reply = client.docmd("AUTH", plain_auth(PRINCIPAL, default_server.secret))
        assert reply[0] in (530, 538), reply
        assert re.match(rb"^5\.7\.\d{1,3} ", reply[1]), reply
        assert client.noop()[0] == 250
    events = audit_since(gw, mark)
    find_event(events, event="refused", code=reply[0], client_ip="127.0.0.1")
    assert not [e for e in events if e["event"] == "auth"], events
    assert_healthy(default_server)


def test_mail_without_auth_after_starttls_gets_530(default_server: Server) -> None:
    gw = default_server.gw
    mark = audit_mark(gw)
    with tls_client(gw.port) as client:
        assert "auth" in client.esmtp_features
        assert_reply(client.mail(SENDER), 530, "5.7.0", "Authentication required")
        assert_reply(client.rcpt(RECIPIENT), 503, "5.5.1", "need MAIL")
    events = audit_since(gw, mark)
    refused = find_event(events, event="refused", result="mail", code=530)
    assert refused["principal"] is None
    assert refused["client_ip"] == "127.0.0.1"
    assert_healthy(default_server)


def test_mail_before_starttls_gets_530(default_server: Server) -> None:
    gw = default_server.gw
    mark = audit_mark(gw)
    with connect(gw.port) as client:
        client.ehlo()
        assert_reply(client.mail(SENDER), 530, "5.7.0", "STARTTLS")
        assert_reply(client.docmd("RCPT", f"TO:<{RECIPIENT}>"), 530, "5.7.0", "STARTTLS")
    find_event(audit_since(gw, mark), event="refused", code=530, client_ip="127.0.0.1")
    assert_healthy(default_server)


def test_sender_outside_principal_domains_gets_550(default_server: Server) -> None:
    gw = default_server.gw
    mark = audit_mark(gw)
    with tls_client(gw.port) as client:
        client.login(PRINCIPAL, default_server.secret)
        for sender in ("billing@other.example", "ehr@sub.clinic.example.org"):
            assert_reply(
                client.mail(sender), 550, "5.7.1", 'Sender not permitted for principal "ehr1"'
            )
        # The session is still usable for an allowed sender.
        assert client.mail(SENDER)[0] == 250
        client.rset()
    events = audit_since(gw, mark)
    refused = find_event(events, event="refused", code=550, sender="billing@other.example")
    assert refused["principal"] == PRINCIPAL
    assert refused["client_ip"] == "127.0.0.1"
    assert refused["result"] == "mail"
    assert 'Sender not permitted for principal "ehr1"' in refused["detail"]
    find_event(events, event="refused", code=550, sender="ehr@sub.clinic.example.org")
    assert_healthy(default_server)


def test_null_sender_gets_550(default_server: Server) -> None:
    gw = default_server.gw
    mark = audit_mark(gw)
    with tls_client(gw.port) as client:
        client.login(PRINCIPAL, default_server.secret)
        assert_reply(client.docmd("MAIL", "FROM:<>"), 550, "5.7.1", "Null sender not permitted")
    find_event(audit_since(gw, mark), event="refused", result="mail", code=550, principal=PRINCIPAL)
    assert_healthy(default_server)


@pytest.mark.parametrize(
    "recipient",
    ["<a b@x>", "<@route:x@y>", "<user@-bad-.test>", "<user@bad..test>", "<nodomain>"],
)
def test_malformed_recipient_gets_553(default_server: Server, recipient: str) -> None:
    gw = default_server.gw
    mark = audit_mark(gw)
    with tls_client(gw.port) as client:
        client.login(PRINCIPAL, default_server.secret)
        assert client.mail(SENDER)[0] == 250
        code, text = client.docmd("RCPT", f"TO:{recipient}")
        assert code == 553, (code, text)
        assert re.match(rb"^5\.1\.\d{1,3} ", text), text
        assert b"address" in text.lower(), text
        # The transaction goes on: a good recipient is still accepted.
        assert client.rcpt(RECIPIENT)[0] == 250
        client.rset()
    find_event(audit_since(gw, mark), event="refused", code=553, client_ip="127.0.0.1")
    assert_healthy(default_server)


BARE_LINE_ENDINGS = {
    "bare-lf@clinic.example.org": b"line one\nline two\r\n",
    "bare-cr@clinic.example.org": b"line one\rline two\r\n",
    # The SMTP smuggling pattern: "<LF>.<CR><LF>" must not end DATA or smuggle a command.
    "smuggle@clinic.example.org": (
        b"hello\n.\r\nMAIL FROM:<evil@clinic.example.org>\r\nRCPT TO:<victim@partner.test>\r\n"
    ),
}


def test_bare_cr_or_lf_in_data_gets_554_and_nothing_is_queued(default_server: Server) -> None:
    gw = default_server.gw
    mark = audit_mark(gw)
    with tls_client(gw.port) as client:
        client.login(PRINCIPAL, default_server.secret)
        for sender, body in BARE_LINE_ENDINGS.items():
            assert client.mail(sender)[0] == 250
            assert client.rcpt(RECIPIENT)[0] == 250
            client.putcmd("DATA")
            assert client.getreply()[0] == 354
            # Raw bytes: smtplib.data() would turn the bare CR/LF into CRLF.
            client.send(b"Subject: t\r\n\r\n" + body + b".\r\n")
            assert_reply(client.getreply(), 554, "5.6.0", "bare CR or LF")
            # Nothing smuggled is pending: the next command gets its own reply.
            assert client.noop()[0] == 250
    events = audit_since(gw, mark)
    for sender in BARE_LINE_ENDINGS:
        refused = find_event(events, event="refused", result="data", code=554, sender=sender)
        assert refused["recipients"] == f'["{RECIPIENT}"]'
        assert refused["principal"] == PRINCIPAL
    assert not [e for e in events if e["event"] == "accepted"], events
    senders = queued_senders(gw)
    assert not senders & {*BARE_LINE_ENDINGS, "evil@clinic.example.org"}, senders
    assert_healthy(default_server)


MALFORMED_CONTENT = {
    # NUL is no character of mail text (RFC 5322); some next hops cut the message at it.
    "nul@clinic.example.org": (
        b"Subject: nul\r\n\r\nbefore\0after\r\n",
        (554, "5.6.0", "NUL byte"),
    ),
    # Raw UTF-8 in a header field without SMTPUTF8 (which is not offered).
    "eightbit@clinic.example.org": (
        "Subject: Grüße\r\n\r\nhello\r\n".encode(),
        (554, "5.6.7", "non-ASCII bytes"),
    ),
}


def test_nul_or_8bit_header_gets_554_and_nothing_is_queued(default_server: Server) -> None:
    gw = default_server.gw
    mark = audit_mark(gw)
    with tls_client(gw.port) as client:
        client.login(PRINCIPAL, default_server.secret)
        for sender, (content, (code, enhanced, text)) in MALFORMED_CONTENT.items():
            assert client.mail(sender, ["BODY=8BITMIME"])[0] == 250
            assert client.rcpt(RECIPIENT)[0] == 250
            assert_reply(client.data(content), code, enhanced, text)
        # An 8-bit body is fine (8BITMIME): only the header section must be ASCII.
        sender = "eightbit-body@clinic.example.org"
        assert client.mail(sender, ["BODY=8BITMIME"])[0] == 250
        assert client.rcpt(RECIPIENT)[0] == 250
        body = f"From: {sender}\r\nSubject: umlauts\r\n"
        body += "Content-Type: text/plain; charset=utf-8\r\n"
        body += "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n"
        code, reply = client.data(body.encode())
        assert code == 250 and b"queued as" in reply, (code, reply)
    events = audit_since(gw, mark)
    for sender, (_, (code, _, text)) in MALFORMED_CONTENT.items():
        refused = find_event(events, event="refused", result="data", code=code, sender=sender)
        assert text in refused["detail"]
    assert not set(MALFORMED_CONTENT) & queued_senders(gw)
    assert_healthy(default_server)


def test_bare_cr_or_lf_inside_a_command_line_is_a_syntax_error(default_server: Server) -> None:
    """Only CRLF ends a command: what hides behind a bare LF is never run."""
    gw = default_server.gw
    mark = audit_mark(gw)
    with tls_client(gw.port) as client:
        # An AUTH answer is a line too.
        assert client.docmd("AUTH", "PLAIN")[0] == 334
        client.send(b"AGVocjEA\nNOOP\r\n")
        assert client.getreply()[0] == 500
        assert client.noop() == (250, b"OK")
        client.login(PRINCIPAL, default_server.secret)
        for hidden in (b"\n", b"\r"):
            client.send(b"MAIL FROM:<" + SENDER.encode() + b">" + hidden)
            client.send(b"RCPT TO:<" + RECIPIENT.encode() + b">\r\n")
            assert_reply(client.getreply(), 500, "5.5.2", "bare CR or LF")
            # Neither half ran: there is no transaction, and no second reply is pending.
            assert client.noop() == (250, b"OK")
            assert client.rcpt(RECIPIENT)[0] == 503
        # Lines that do end in CRLF work as before.
        assert client.mail(SENDER)[0] == 250
    refusal = find_event(audit_since(gw, mark), event="refused", result="protocol", code=500)
    assert "bare CR or LF" in refusal["detail"]
    assert_healthy(default_server)


def test_auth_plain_without_initial_response(default_server: Server) -> None:
    """The two-step form (empty 334 challenge, then the token) refuses and accepts correctly."""
    gw = default_server.gw
    mark = audit_mark(gw)
    with tls_client(gw.port) as client:
        assert client.docmd("AUTH", "PLAIN") == (334, b"")
        assert_reply(
            client.docmd(plain_auth(PRINCIPAL, "wrong")[len("PLAIN ") :]),
            535,
            "5.7.8",
            "credentials invalid",
        )
        assert client.docmd("AUTH", "PLAIN") == (334, b"")
        assert client.docmd(plain_auth(PRINCIPAL, default_server.secret)[len("PLAIN ") :])[0] == 235
    events = audit_since(gw, mark)
    find_event(events, event="auth", result="failed", principal=PRINCIPAL, code=535)
    find_event(events, event="auth", result="ok", principal=PRINCIPAL, code=235)
    assert_healthy(default_server)


@pytest.mark.parametrize(
    ("mechanism", "answer", "reply"),
    [
        ("LOGIN", "*", "501 5.7.0 Auth aborted"),
        ("PLAIN", "*", "501 5.7.0 Auth aborted"),
        ("LOGIN", "!!notbase64!!", "501 5.5.2 Can't decode base64"),
    ],
)
def test_aborted_auth_exchange_gets_exactly_one_reply(
    default_server: Server, mechanism: str, answer: str, reply: str
) -> None:
    gw = default_server.gw
    with tls_client(gw.port) as client:
        assert client.docmd("AUTH", mechanism)[0] == 334
        code, text = client.docmd(answer)
        assert f"{code} {text.decode()}" == reply
        # The next command must get its own reply, not a leftover from AUTH.
        assert client.noop() == (250, b"OK")
    assert_healthy(default_server)


def test_no_traceback_after_a_barrage_of_refusals(default_server: Server) -> None:
    gw = default_server.gw
    port = gw.port
    mark = audit_mark(gw)
    with connect(port) as client:
        assert client.docmd("MAIL", f"FROM:<{SENDER}>")[0] == 530  # before EHLO and STARTTLS
        assert client.docmd("FROBNICATE")[0] == 530
        client.ehlo()
        assert client.docmd("STARTTLS", "now")[0] == 501
    with tls_client(port) as client:
        assert client.docmd("FROBNICATE")[0] == 500
        assert client.docmd("X" * 5000)[0] == 500  # command line too long
        assert client.docmd("HELO")[0] == 501
        assert client.docmd("AUTH", "NOPE")[0] == 504
        assert client.docmd("AUTH", "PLAIN !!notbase64!!")[0] == 501
        one_part = base64.b64encode(b"just-one-part").decode()
        assert client.docmd("AUTH", f"PLAIN {one_part}")[0] == 501
        client.login(PRINCIPAL, default_server.secret)
        assert client.docmd("AUTH", plain_auth(PRINCIPAL, default_server.secret))[0] == 503
        assert client.docmd("RCPT", f"TO:<{RECIPIENT}>")[0] == 503  # RCPT before MAIL
        assert client.docmd("DATA")[0] == 503
        assert client.mail(SENDER, ["BODY=BINARY"])[0] == 501
        assert client.docmd("MAIL", f"FROM:<{SENDER}> SMTPUTF8")[0] == 501
        assert client.mail(SENDER, ["FOO=BAR"])[0] == 555
        assert client.mail(SENDER)[0] == 250
        assert client.docmd("MAIL", f"FROM:<{SENDER}>")[0] == 503  # nested MAIL
        client.send("RCPT TO:<dr@pärtner.test>\r\n".encode())
        assert client.getreply()[0] == 500  # non-ASCII without SMTPUTF8
    # A client that disappears in the middle of DATA.
    with tls_client(port) as client:
        client.login(PRINCIPAL, default_server.secret)
        client.mail("vanish@clinic.example.org")
        client.rcpt(RECIPIENT)
        client.putcmd("DATA")
        assert client.getreply()[0] == 354
        client.send(b"Subject: half\r\n\r\nhalf a mess")
        client.close()
    # A client that says STARTTLS and then sends garbage instead of a ClientHello.
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        sock.makefile("rb") as replies,
    ):
        assert replies.readline().startswith(b"220 ")
        sock.sendall(b"EHLO x\r\n")
        for _ in range(20):  # the EHLO reply lines, up to the last ("250 ...")
            if replies.readline().startswith(b"250 "):
                break
        sock.sendall(b"STARTTLS\r\n")
        assert replies.readline().startswith(b"220 ")
        sock.sendall(b"this is not TLS\r\n" * 4)
        with contextlib.suppress(OSError):
            sock.recv(100)
    # A client that hangs up right after the greeting, without QUIT.
    assert raw_greeting(port).startswith(b"220 ")
    time.sleep(0.3)  # let the server log whatever these caused
    assert not [e for e in audit_since(gw, mark) if e["event"] == "accepted"]
    assert_healthy(default_server)
    assert "Traceback" not in gw.log_text()
    # The only session error is the failed STARTTLS handshake, logged by type, not content.
    errors = [e for e in gw.log_events() if e.get("event") == "session_error"]
    assert {e["error"] for e in errors} <= {"TLSSetupException"}, errors


# --- one server with small limits: size, recipients and connections -------------------------


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    gw = Phigate(
        tmp_path_factory.mktemp("limited"),
        limits={
            "max_message_size": 10000,
            "max_recipients": 3,
            "max_connections_per_ip": 3,
            "max_connections": 5,
        },
    )
    secret = gw.add_principal(PRINCIPAL, DOMAIN)
    with gw:
        yield Server(gw, secret)


def test_oversize_message_gets_552_and_nothing_is_queued(limited_server: Server) -> None:
    gw = limited_server.gw
    mark = audit_mark(gw)
    big = message("big@clinic.example.org", RECIPIENT, "big", "x" * 70 + "\n" + "y" * 20000)
    with tls_client(gw.port) as client:
        client.login(PRINCIPAL, limited_server.secret)
        assert client.esmtp_features["size"] == "10000"
        # Declared too big: refused at MAIL.
        assert_reply(client.mail("big@clinic.example.org", ["SIZE=20000"]), 552, "5.3.4", "exceeds")
        # Not declared: refused after DATA, once the whole message has been read.
        assert client.mail("big@clinic.example.org")[0] == 250
        assert client.rcpt(RECIPIENT)[0] == 250
        assert len(big) > 20000
        assert_reply(client.data(big), 552, "5.3.4", "Too much mail data")
        assert client.noop()[0] == 250
    events = audit_since(gw, mark)
    assert len([e for e in events if e["code"] == 552]) == 2, events
    assert not [e for e in events if e["event"] == "accepted"], events
    assert "big@clinic.example.org" not in queued_senders(gw)
    assert_healthy(limited_server)


def test_fourth_recipient_gets_452_and_first_three_are_delivered(limited_server: Server) -> None:
    gw = limited_server.gw
    mark = audit_mark(gw)
    sender = "many@clinic.example.org"
    recipients = [f"r{i}@partner.test" for i in range(1, 5)]
    with tls_client(gw.port) as client:
        client.login(PRINCIPAL, limited_server.secret)
        refused = client.sendmail(sender, recipients, message(sender, recipients[0], "many", "hi"))
    assert list(refused) == ["r4@partner.test"]
    assert_reply(refused["r4@partner.test"], 452, "4.5.3", "Too many recipients (at most 3")
    refusal = find_event(audit_since(gw, mark), event="refused", result="rcpt", code=452)
    assert refusal["sender"] == sender

    def captured() -> list[dict[str, Any]]:
        return [row for row in gw.json("sandbox", "ls") if row["sender"] == sender]

    wait_until(lambda: bool(captured()), timeout=15, interval=0.3)
    rows = captured()
    assert len(rows) == 1
    assert sorted(rows[0]["recipients"]) == recipients[:3]
    assert_healthy(limited_server)


def test_connection_limits_per_ip_and_in_total(limited_server: Server) -> None:
    gw = limited_server.gw
    port = gw.port
    mark = audit_mark(gw)

    def wait_for_220(source: str) -> None:
        def greets() -> bool:
            return raw_greeting(port, source).startswith(b"220 ")

        wait_until(greets, timeout=5, interval=0.05)

    with contextlib.ExitStack() as stack:
        local = [stack.enter_context(connect(port)) for _ in range(3)]
        greeting, closed = refused_greeting(port)
        assert greeting == b"421 4.7.0 too many connections from your address; try again later\r\n"
        assert closed  # and the server hangs up
        # A different client address still gets in, up to max_connections in total.
        others = [stack.enter_context(connect(port, "127.0.0.2")) for _ in range(2)]
        greeting, closed = refused_greeting(port, "127.0.0.3")
        assert greeting == b"421 4.7.0 too many connections; try again later\r\n"
        assert closed
        # The admitted sessions are unaffected.
        assert all(client.noop()[0] == 250 for client in local + others)
        # Freeing one slot lets the next client in.
        local.pop().quit()
        wait_for_220("127.0.0.1")
        others.pop().quit()
        wait_for_220("127.0.0.3")

    # Turned-away connections are audited after their 421, as the session ends.
    def turned_away_audited() -> bool:
        events = audit_since(gw, mark)
        refused = {e["client_ip"] for e in events if (e["event"], e["code"]) == ("refused", 421)}
        return {"127.0.0.1", "127.0.0.3"} <= refused

    wait_until(turned_away_audited, timeout=10)
    # Every slot is released once the clients are gone.
    with contextlib.ExitStack() as stack:
        wait_until(lambda: raw_greeting(port).startswith(b"220 "), timeout=5, interval=0.05)
        for _ in range(3):
            stack.enter_context(connect(port))
    assert_healthy(limited_server)


def test_client_that_hangs_up_at_once_releases_its_slot(tmp_path: Path) -> None:
    gw = Phigate(tmp_path, limits={"max_connections_per_ip": 3})
    gw.start()
    try:
        source = "127.0.0.7"
        for _ in range(6):  # what a TCP health check or a port scanner does
            socket.create_connection(
                ("127.0.0.1", gw.port), timeout=5, source_address=(source, 0)
            ).close()

        def all_three_admitted() -> bool:
            with contextlib.ExitStack() as stack:
                socks = [
                    stack.enter_context(
                        socket.create_connection(
                            ("127.0.0.1", gw.port), timeout=5, source_address=(source, 0)
                        )
                    )
                    for _ in range(3)
                ]
                return all(read_line(sock).startswith(b"220 ") for sock in socks)

        with contextlib.suppress(TimeoutError):
            wait_until(all_three_admitted, timeout=3, interval=0.2)
        greeting, _ = refused_greeting(gw.port, source)
        assert greeting.startswith(b"220 "), greeting
    finally:
        gw.kill()  # a graceful stop would wait out the grace period for the stuck sessions


# --- AUTH lockout ---------------------------------------------------------------------------


def test_auth_lockout_locks_the_client_not_the_principal(tmp_path: Path) -> None:
    """Five wrong secrets lock the guessing address out, not the principal everywhere."""
    gw = Phigate(
        tmp_path,
        limits={"auth_lockout_after": 5, "auth_lockout_seconds": 60, "auth_backoff_base": 0},
    )
    secret = gw.add_principal(PRINCIPAL, DOMAIN)
    with gw:
        mark = audit_mark(gw)
        with tls_client(gw.port) as client:
            for _ in range(5):
                assert_reply(
                    client.docmd("AUTH", plain_auth(PRINCIPAL, "wrong")),
                    535,
                    "5.7.8",
                    "credentials invalid",
                )
            assert_reply(
                client.docmd("AUTH", plain_auth(PRINCIPAL, secret)),
                454,
                "4.7.0",
                "Too many failed AUTH attempts",
            )
            assert client.mail(SENDER)[0] == 530  # and the session is not authenticated
        # The guessing address is locked for every user name, before any check...
        with tls_client(gw.port) as client:
            assert_reply(
                client.docmd("AUTH", plain_auth("billing", "whatever")),
                454,
                "4.7.0",
                "Too many failed AUTH attempts",
            )
        # ...while the principal itself still logs in, and sends, from elsewhere.
        with tls_client(gw.port, "127.0.0.2") as client:
            assert client.docmd("AUTH", plain_auth(PRINCIPAL, secret))[0] == 235
            assert client.mail(SENDER)[0] == 250
            assert client.rcpt(RECIPIENT)[0] == 250
            code, reply = client.data(message(SENDER, RECIPIENT, "still here", "hi"))
            assert code == 250 and b"queued as" in reply, (code, reply)
        events = audit_since(gw, mark)
        failed = [(e["principal"], e["client_ip"]) for e in events if e["result"] == "failed"]
        assert failed == [(PRINCIPAL, "127.0.0.1")] * 5
        locked = [e for e in events if e["event"] == "auth" and e["result"] == "locked"]
        assert [(e["principal"], e["client_ip"], e["code"]) for e in locked] == [
            ("billing", "127.0.0.1", 454),
        ]
        # The first session's sixth refusal is past the five audited one by one: counted.
        summary = find_event(events, event="refused", result="session", client_ip="127.0.0.1")
        assert "auth failed 535 x5" in summary["detail"], summary
        assert "auth locked 454 x1" in summary["detail"], summary
        ok = [(e["principal"], e["client_ip"]) for e in events if e["result"] == "ok"]
        assert ok == [(PRINCIPAL, "127.0.0.2")]
        assert raw_greeting(gw.port).startswith(b"220 ")
        assert "Traceback" not in gw.log_text()


def test_a_locked_client_that_keeps_guessing_is_slowed_while_others_send(
    tmp_path: Path,
) -> None:
    """Once locked, each AUTH waits auth_backoff_max for its 454: a guessing loop gets a
    few answers, not thousands, and the principal sends from elsewhere at full speed."""
    wait = 1.0
    gw = Phigate(
        tmp_path,
        limits={
            "auth_lockout_after": 2,
            "auth_lockout_seconds": 60,
            "auth_backoff_base": 0,
            "auth_backoff_max": wait,
        },
    )
    secret = gw.add_principal(PRINCIPAL, DOMAIN)
    answers: list[tuple[int, float]] = []
    with gw, tls_client(gw.port, "127.0.0.2") as guesser, ThreadPoolExecutor(1) as pool:
        for _ in range(2):
            assert guesser.docmd("AUTH", plain_auth(PRINCIPAL, "wrong"))[0] == 535

        def guess_for(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:  # bounded by the deadline
                start = time.monotonic()
                code = guesser.docmd("AUTH", plain_auth(PRINCIPAL, "wrong"))[0]
                answers.append((code, time.monotonic() - start))

        guessing = pool.submit(guess_for, 2.5)
        started = time.monotonic()
        with tls_client(gw.port) as sender:
            assert sender.docmd("AUTH", plain_auth(PRINCIPAL, secret))[0] == 235
            for n in range(5):
                sender.sendmail(SENDER, [RECIPIENT], message(SENDER, RECIPIENT, f"m{n}", "hi"))
        sending = time.monotonic() - started
        guessing.result(timeout=30)
    assert sending < wait  # not queued behind the guesser's answers
    assert 2 <= len(answers) <= 4, answers  # one per `wait` seconds, not hundreds
    assert all(code == 454 and took >= wait - 0.05 for code, took in answers), answers
    assert "Traceback" not in gw.log_text()


# --- allow-listed networks and implicit TLS ---------------------------------------------------


@pytest.fixture(scope="module")
def multi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int, int]]:
    """A STARTTLS listener (gw.port), a plain legacy listener and an implicit-TLS listener."""
    gw = Phigate(tmp_path_factory.mktemp("multi"))
    legacy_port, smtps_port = free_port(), free_port()
    add_listeners(
        gw,
        [
            {"name": "submission", "address": f"127.0.0.1:{gw.port}", "tls": "starttls"},
            {
                "name": "legacy",
                "address": f"127.0.0.1:{legacy_port}",
                "tls": "none",
                "allow_networks_without_auth": True,
            },
            {"name": "smtps", "address": f"127.0.0.1:{smtps_port}", "tls": "implicit"},
        ],
        relay_networks=[{"name": "legacy", "networks": ["127.0.0.0/8"], "domains": [DOMAIN]}],
    )
    secret = gw.add_principal(PRINCIPAL, DOMAIN)
    with gw:
        yield Server(gw, secret), legacy_port, smtps_port


def test_allow_listed_network_relays_only_its_domains(
    multi_server: tuple[Server, int, int],
) -> None:
    server, legacy_port, _ = multi_server
    gw = server.gw
    mark = audit_mark(gw)
    sender = "legacy-ehr@clinic.example.org"
    with connect(legacy_port) as client:
        client.ehlo()
        assert "starttls" not in client.esmtp_features
        assert "auth" not in client.esmtp_features
        assert_reply(
            client.mail("ehr@other.example"),
            550,
            "5.7.1",
            'Sender not permitted for network "legacy"',
        )
        refused = client.sendmail(sender, [RECIPIENT], message(sender, RECIPIENT, "legacy", "hi"))
        assert refused == {}
    events = audit_since(gw, mark)
    refusal = find_event(events, event="refused", result="mail", code=550)
    assert refusal["sender"] == "ehr@other.example"
    assert refusal["principal"] is None
    assert 'network "legacy"' in refusal["detail"]
    accepted = find_event(events, event="accepted", sender=sender, client_ip="127.0.0.1")
    assert accepted["principal"] is None
    # The listener without the flag still wants AUTH from the very same network.
    with tls_client(gw.port) as client:
        assert_reply(client.mail(SENDER), 530, "5.7.0", "Authentication required")
    assert_healthy(server)


def test_implicit_tls_listener(multi_server: tuple[Server, int, int]) -> None:
    server, _, smtps_port = multi_server
    gw = server.gw
    mark = audit_mark(gw)
    with smtplib.SMTP_SSL(
        "127.0.0.1", smtps_port, timeout=10, context=insecure_context()
    ) as client:
        client.ehlo()
        assert "auth" in client.esmtp_features
        assert "starttls" not in client.esmtp_features
        assert_reply(client.mail(SENDER), 530, "5.7.0", "Authentication required")
        client.login(PRINCIPAL, server.secret)
        sender = "smtps@clinic.example.org"
        assert client.sendmail(sender, [RECIPIENT], message(sender, RECIPIENT, "tls", "hi")) == {}
    events = audit_since(gw, mark)
    find_event(events, event="refused", result="mail", code=530)
    find_event(events, event="auth", result="ok", principal=PRINCIPAL)
    find_event(events, event="accepted", sender=sender, principal=PRINCIPAL)

    # Plain text to a TLS port: no greeting, and the server drops the connection.
    with socket.create_connection(("127.0.0.1", smtps_port), timeout=5) as sock:
        sock.sendall(b"EHLO plain.test\r\n")
        try:
            answer = sock.recv(1024)
        except ConnectionResetError:
            answer = b""
        assert b"220" not in answer and b"250" not in answer, answer

    # The listener is still serving.
    with smtplib.SMTP_SSL(
        "127.0.0.1", smtps_port, timeout=10, context=insecure_context()
    ) as client:
        assert client.noop()[0] == 250
    assert_healthy(server)


def legacy_client_context(max_version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client context allowing TLS 1.0 up to max_version, with old ciphers permitted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = max_version
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def handshake(port: int, ctx: ssl.SSLContext) -> str | None:
    """The negotiated TLS version."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        ctx.wrap_socket(sock) as tls_sock,
    ):
        return tls_sock.version()


def test_implicit_tls_listener_refuses_tls_1_1(multi_server: tuple[Server, int, int]) -> None:
    server, _, smtps_port = multi_server
    try:
        tls_1_1 = legacy_client_context(ssl.TLSVersion.TLSv1_1)
    except (ValueError, ssl.SSLError) as exc:
        pytest.skip(f"local OpenSSL cannot build a TLS 1.1 client context: {exc}")
    # Control: the same kind of client, allowed TLS 1.2, gets in.
    assert handshake(smtps_port, legacy_client_context(ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    try:
        version = handshake(smtps_port, tls_1_1)
    except ssl.SSLError as exc:
        if "NO_PROTOCOLS_AVAILABLE" in str(exc) or "NO_CIPHERS_AVAILABLE" in str(exc):
            pytest.skip(f"local OpenSSL cannot offer TLS 1.1: {exc}")
        # Refused: a protocol_version alert, or the server simply hangs up (SSLEOFError).
    except (ConnectionResetError, BrokenPipeError):
        pass  # refused as well: the server reset the connection
    else:
        pytest.fail(f"TLS handshake succeeded with {version}")

    with smtplib.SMTP_SSL(
        "127.0.0.1", smtps_port, timeout=10, context=insecure_context()
    ) as client:
        assert client.noop()[0] == 250
    assert_healthy(server)
