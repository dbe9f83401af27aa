"""The web app shares the SMTP process's file descriptors: clients that connect
and send nothing, or part of a request, are disconnected after `web.request_timeout`,
connections beyond `web.max_connections` (or `web.max_connections_per_ip` from
one client) are closed at once, and real requests are served meanwhile. Raw TCP
sockets as an attacker would hold them, httpx as a recipient's browser."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from harness import Phigate, free_port, insecure_context, wait_until
from webgate import base_url

from gateway.clients import ConnectionCounter
from gateway.web.connections import AdmittingServer, bounded_protocol

MAX_CONNECTIONS = 30
REQUEST_TIMEOUT = 1.5
MARGIN = 2.0  # scheduling slack on a busy machine


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phigate]:
    gateway = Phigate(
        tmp_path_factory.mktemp("web-limits"),
        web={"max_connections": MAX_CONNECTIONS, "request_timeout": REQUEST_TIMEOUT},
    )
    with gateway:
        yield gateway


def _address(gw: Phigate) -> tuple[str, int]:
    host, port = str(gw.settings["web"]["address"]).rsplit(":", 1)
    return host, int(port)


def _connect(gw: Phigate, first_bytes: bytes = b"", source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(_address(gw), timeout=5, source_address=(source, 0))
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` within `seconds` (what it sends is skipped)."""
    deadline = time.monotonic() + seconds
    try:
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            if sock.recv(65536) == b"":
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _served(gw: Phigate) -> bool:
    response = httpx.get(f"{base_url(gw)}/api/openapi.json", timeout=5)
    return response.status_code == 200


def _trickle(sock: socket.socket, stop: threading.Event) -> None:
    """A request line one byte at a time, never finished."""
    for byte in b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\n":
        if stop.wait(0.2):
            return
        try:
            sock.send(bytes([byte]))
        except OSError:
            return  # closed by the server


def test_idle_and_partly_sent_requests_are_closed_while_requests_are_served(
    gw: Phigate,
) -> None:
    started = time.monotonic()
    silent = [_connect(gw) for _ in range(12)]  # with the others: 27 of 30 slots
    halves = [_connect(gw, b"GET /api/openapi.json HT") for _ in range(8)]
    headers_only = [_connect(gw, b"GET / HTTP/1.1\r\nHost: x\r\n") for _ in range(4)]
    half_body = (  # the API reads the whole body before it answers
        b"POST /api/v1/consent/opt-outs HTTP/1.1\r\nHost: x\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"address":'
    )
    bodies = [_connect(gw, half_body) for _ in range(2)]
    trickler = _connect(gw)
    stop = threading.Event()
    thread = threading.Thread(target=_trickle, args=(trickler, stop), daemon=True)
    thread.start()
    try:
        assert _served(gw)  # a real request, while they are all open
        held = [*silent, *halves, *headers_only, *bodies, trickler]
        deadline = started + REQUEST_TIMEOUT + MARGIN
        assert all(_closed_within(s, deadline - time.monotonic()) for s in held)
        closed_after = time.monotonic() - started
        assert closed_after >= REQUEST_TIMEOUT - 0.2  # not before their time was up
        assert _served(gw)
    finally:
        stop.set()
        thread.join(5)
        for sock in [*silent, *halves, *headers_only, *bodies, trickler]:
            sock.close()


def test_a_connection_beyond_the_limit_is_closed_at_once(gw: Phigate) -> None:
    held = [_connect(gw) for _ in range(MAX_CONNECTIONS)]
    try:
        # Once the server has taken all of them (a busy machine may take a while),
        # the next is closed long before its header timeout.
        deadline = time.monotonic() + 10
        while True:
            with _connect(gw) as extra:
                if _closed_within(extra, 0.5):
                    break
            assert time.monotonic() < deadline, "no connection was refused at the limit"
        assert not any(_closed_within(s, 0.01) for s in held[:3])  # the others are kept
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # slots free again once they hang up
        try:
            if _served(gw):
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("the web app did not serve again after the clients hung up")


def test_a_keep_alive_client_must_send_its_next_request_in_time(gw: Phigate) -> None:
    with _connect(gw, b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n") as sock:
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /api/openapi.json HT")  # the next request, never finished
        assert _closed_within(sock, REQUEST_TIMEOUT + MARGIN)


def test_one_client_cannot_hold_every_connection(tmp_path: Path) -> None:
    """Beyond web.max_connections_per_ip a client's connections are closed at once;
    other clients connect and are served, and its slots come back when the held
    connections time out."""
    per_ip = 5
    gateway = Phigate(
        tmp_path,
        web={
            "max_connections": MAX_CONNECTIONS,
            "max_connections_per_ip": per_ip,
            "request_timeout": REQUEST_TIMEOUT,
        },
    )
    with gateway:
        hoard = [_connect(gateway, b"GET / HTTP/1.1\r\n", "127.0.0.2") for _ in range(per_ip)]
        try:
            time.sleep(0.3)  # all accepted by the server
            with _connect(gateway, source="127.0.0.2") as extra:
                assert _closed_within(extra, 0.5)  # long before its header timeout
            with _connect(gateway, source="127.0.0.3") as neighbour:
                assert not _closed_within(neighbour, 0.3)  # another client still gets a slot
            assert _served(gateway)  # and a real request from a third is served
            assert all(_closed_within(s, REQUEST_TIMEOUT + MARGIN) for s in hoard)
        finally:
            for sock in hoard:
                sock.close()
        with _connect(gateway, source="127.0.0.2") as again:  # its slots were released
            assert not _closed_within(again, 0.3)


# With web.tls: the limits are applied before the TLS handshake.
TLS_PER_IP = 2


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phigate]:
    gateway = Phigate(
        tmp_path_factory.mktemp("web-limits-tls"),
        web={
            "tls": True,
            "max_connections": MAX_CONNECTIONS,
            "max_connections_per_ip": TLS_PER_IP,
            "request_timeout": REQUEST_TIMEOUT,
        },
        metrics={"enabled": True, "address": f"127.0.0.1:{free_port()}"},
    )
    with gateway:
        yield gateway


def _client_hello() -> bytes:
    """The first flight of a real TLS client (Python's ssl), as it goes on the wire."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = insecure_context().wrap_bio(incoming, outgoing, server_hostname="phigate.test")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _answer_to_hello(gw: Phigate, source: str) -> bytes:
    """All the server sends to a ClientHello from `source` until it closes or pauses."""
    received = b""
    with _connect(gw, _client_hello(), source) as sock:
        sock.settimeout(2)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:  # the handshake awaits the client's next flight
            assert received
    return received


def _handshake(gw: Phigate, source: str) -> ssl.SSLSocket:
    return insecure_context().wrap_socket(_connect(gw, source=source))


def _https_served(gw: Phigate, source: str) -> bool:
    transport = httpx.HTTPTransport(local_address=source, verify=insecure_context())
    with httpx.Client(transport=transport, timeout=5) as client:
        response = client.get(f"{base_url(gw)}/api/openapi.json")
    return response.status_code == 200


def _refused(gw: Phigate) -> float:
    """phigate_web_connections_refused_total of the web app, per-client limit."""
    url = f"http://{gw.settings['metrics']['address']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(
                'phigate_web_connections_refused_total{limit="client",server="web"}'
            ):
                return float(line.split()[1])
    return 0.0


def test_a_client_over_its_limit_gets_not_one_byte_of_tls(https: Phigate) -> None:
    """The connection is closed before the handshake: a flood from one address costs
    no TLS work, and the refusal is counted and logged."""
    assert _answer_to_hello(https, "127.0.0.5")  # a client within its limit: ServerHello
    held = [_handshake(https, "127.0.0.6") for _ in range(TLS_PER_IP)]
    try:
        before = _refused(https)
        assert _answer_to_hello(https, "127.0.0.6") == b""
        assert _refused(https) == before + 1
        refusals = [e for e in https.log_events() if e["event"] == "web_connections_refused"]
        assert any(e["client_ip"] == "127.0.0.6" and e["limit"] == "client" for e in refusals)
        assert _https_served(https, "127.0.0.7")  # another client is served meanwhile
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: _https_served(https, "127.0.0.6"), 10)  # its slots came back


def test_failed_and_unfinished_handshakes_give_their_slot_back(https: Phigate) -> None:
    for _ in range(TLS_PER_IP + 2):  # more than its slots, one after the other
        with _connect(https, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "127.0.0.8") as sock:
            assert _closed_within(sock, MARGIN)  # not TLS: the handshake fails
    assert _https_served(https, "127.0.0.8")
    silent = [_connect(https, source="127.0.0.9") for _ in range(TLS_PER_IP)]
    try:
        time.sleep(0.3)  # all accepted by the server, their handshakes begun
        assert _answer_to_hello(https, "127.0.0.9") == b""  # no slot left
        # The handshake, too, must end within web.request_timeout.
        assert all(_closed_within(s, REQUEST_TIMEOUT + MARGIN) for s in silent)
    finally:
        for sock in silent:
            sock.close()
    assert _https_served(https, "127.0.0.9")


def test_serve_forever_accepts_until_the_server_is_closed() -> None:
    """The server's own loop, as asyncio.Server's: with no slot to give (a limit of
    0), a client is closed at once while it serves, and closing it ends the wait."""

    @dataclass(frozen=True)
    class NoSlots:
        max_connections: int = 0
        max_connections_per_ip: int = 0

    async def go() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        counter = ConnectionCounter(NoSlots())
        protocol = bounded_protocol(REQUEST_TIMEOUT)
        server = AdmittingServer(listener, protocol, counter, None, 1.0, "test")
        serving = asyncio.create_task(server.serve_forever())
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, not a byte written
        writer.close()
        assert server.is_serving() and not serving.done()
        server.close()
        await asyncio.wait_for(serving, 5)
        listener.close()

    asyncio.run(go())
