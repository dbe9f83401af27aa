"""A tiny authoritative DNS server on 127.0.0.1 for tests.

Serves whatever is in ``zone`` over UDP and TCP on one ephemeral port, from
background threads.  Record data is given in zone-file text form, so any type
dnspython knows (MX, A, AAAA, TXT, TLSA, CNAME ...) works without changes here.
Records are served with the TTL in ``ttl``; a negative answer (NXDOMAIN or no
records) carries the SOA record of the closest enclosing name that has one,
as a real server's does, which sets how long resolvers keep it.

    with LoopbackDns() as dns:
        dns.add("example.test", "MX", "10 mx1.example.test.")
        resolver = MxResolver([dns.nameserver])
"""

from __future__ import annotations

import contextlib
import errno
import socket
import socketserver
import struct
import threading
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

__all__ = ["LoopbackDns"]

HOST = "127.0.0.1"
TTL = 60
_STOP_TIMEOUT = 2.0
_TCP_IO_TIMEOUT = 2.0
_CNAME_DEPTH = 8


def _key_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


class LoopbackDns:
    """Authoritative test DNS server; see the module docstring."""

    def __init__(self) -> None:
        # (name, TYPE) -> zone-file rdata strings; names are lower case
        # without the trailing dot.  Tests may also edit it directly.
        self.zone: dict[tuple[str, str], list[str]] = {}
        self.servfail: set[str] = set()  # names answered with SERVFAIL
        self.servfail_types: set[tuple[str, str]] = set()  # (name, TYPE) pairs likewise
        self.drop: set[str] = set()  # names never answered (client times out)
        self.authenticated = False  # set the AD flag, as a validating resolver would
        self.ttl = TTL  # of every record served
        self.queries: list[tuple[str, str, str]] = []  # (name, TYPE, "udp"/"tcp")
        self.errors: list[Exception] = []  # server-side failures, raised on exit
        self._lock = threading.Lock()
        self._udp: socketserver.UDPServer | None = None
        self._tcp: socketserver.ThreadingTCPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- zone editing ------------------------------------------------------

    def add(self, name: str, rdtype: str, value: str) -> None:
        """Add one record, e.g. add("example.test", "MX", "10 mx.example.test.")."""
        key = (_key_name(name), rdtype.upper())
        # Parse now so a typo fails in the test, not silently in the server thread.
        _rrset(key[0], key[1], [value])
        with self._lock:
            self.zone.setdefault(key, []).append(value)

    def remove(self, name: str, rdtype: str | None = None) -> None:
        """Remove all records of a name, or only those of one type."""
        target = _key_name(name)
        with self._lock:
            for key in [k for k in self.zone if k[0] == target]:
                if rdtype is None or key[1] == rdtype.upper():
                    del self.zone[key]

    def fail(self, name: str, rdtype: str | None = None) -> None:
        """Answer queries for ``name`` (all types, or just ``rdtype``) with SERVFAIL."""
        with self._lock:
            if rdtype is None:
                self.servfail.add(_key_name(name))
            else:
                self.servfail_types.add((_key_name(name), rdtype.upper()))

    def ignore(self, name: str) -> None:
        """Never answer queries for ``name``, so clients hit their timeout."""
        with self._lock:
            self.drop.add(_key_name(name))

    # -- lifecycle ---------------------------------------------------------

    @property
    def port(self) -> int:
        if self._udp is None:
            raise RuntimeError("server is not running")
        return int(self._udp.server_address[1])

    @property
    def nameserver(self) -> str:
        """The server as "127.0.0.1:PORT", the form MxResolver takes."""
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        udp, tcp = _bind_pair(self)
        self._udp, self._tcp = udp, tcp
        for server in (udp, tcp):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        for server in (self._udp, self._tcp):
            if server is not None:
                server.shutdown()  # returns within one poll_interval
                server.server_close()
        for thread in self._threads:
            thread.join(_STOP_TIMEOUT)
        self._threads.clear()
        self._udp = self._tcp = None

    def __enter__(self) -> LoopbackDns:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None and self.errors:
            raise RuntimeError(f"DNS test server failed: {self.errors[0]!r}") from self.errors[0]

    # -- answering ---------------------------------------------------------

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        """Wire-format reply to one query, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not worth a FORMERR in a test server
        if len(query.question) != 1:
            return None
        question = query.question[0]
        name = _key_name(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((name, rdtype, transport))
            if name in self.drop:
                return None
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            if self.authenticated:
                response.flags |= dns.flags.AD
            if name in self.servfail or (name, rdtype) in self.servfail_types:
                response.set_rcode(dns.rcode.SERVFAIL)
            else:
                try:
                    self._fill(response, name, rdtype)
                except Exception as exc:
                    # Reply at once instead of letting the client time out,
                    # and keep the error so the test fails loudly on exit.
                    self.errors.append(exc)
                    response.answer.clear()
                    response.set_rcode(dns.rcode.SERVFAIL)
        limit = 65535 if transport == "tcp" else max(512, query.payload if query.edns >= 0 else 0)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            # Too big for UDP: send an empty truncated reply so the client
            # retries over TCP, as a real server does.
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    def _fill(self, response: dns.message.Message, name: str, rdtype: str) -> None:
        """Answer from the zone, following in-zone CNAMEs; caller holds the lock."""
        for _ in range(_CNAME_DEPTH):
            values = self.zone.get((name, rdtype))
            if values:
                response.answer.append(_rrset(name, rdtype, values, self.ttl))
                return
            cname = self.zone.get((name, "CNAME"))
            if not cname or rdtype == "CNAME":
                break
            response.answer.append(_rrset(name, "CNAME", cname[:1], self.ttl))
            name = _key_name(cname[0])
        if not response.answer and not self._exists(name):
            response.set_rcode(dns.rcode.NXDOMAIN)
        # Otherwise NOERROR with no data (or a dangling CNAME chain).
        if not response.answer:
            self._add_soa(response, name)

    def _add_soa(self, response: dns.message.Message, name: str) -> None:
        labels = name.split(".")
        for start in range(len(labels)):
            owner = ".".join(labels[start:])
            soa = self.zone.get((owner, "SOA"))
            if soa:
                response.authority.append(_rrset(owner, "SOA", soa[:1], self.ttl))
                return

    def _exists(self, name: str) -> bool:
        # A name with records of any type, or an empty non-terminal above one
        # (e.g. "_tcp.mx.example.test" when only a TLSA record is below it).
        return any(key[0] == name or key[0].endswith("." + name) for key in self.zone)


def _rrset(name: str, rdtype: str, values: list[str], ttl: int = TTL) -> dns.rrset.RRset:
    # origin=root: a value written without the trailing dot is still absolute.
    return dns.rrset.from_text_list(
        dns.name.from_text(name), ttl, "IN", rdtype, values, origin=dns.name.root, relativize=False
    )


class _UdpServer(socketserver.UDPServer):
    def __init__(self, owner: LoopbackDns) -> None:
        self.owner = owner
        super().__init__((HOST, 0), _UdpHandler)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False  # a stuck client must not delay stop()

    def __init__(self, owner: LoopbackDns, port: int) -> None:
        self.owner = owner
        super().__init__((HOST, port), _TcpHandler)


class _UdpHandler(socketserver.BaseRequestHandler):
    server: _UdpServer

    def handle(self) -> None:
        data, sock = self.request
        reply = self.server.owner.answer(data, "udp")
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TcpHandler(socketserver.BaseRequestHandler):
    server: _TcpServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(_TCP_IO_TIMEOUT)
        with contextlib.suppress(OSError):
            while True:  # RFC 7766: several queries may share a connection
                header = _recv_exact(sock, 2)
                if header is None:
                    return
                (length,) = struct.unpack("!H", header)
                wire = _recv_exact(sock, length)
                if wire is None:
                    return
                reply = self.server.owner.answer(wire, "tcp")
                if reply is not None:
                    sock.sendall(struct.pack("!H", len(reply)) + reply)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _bind_pair(owner: LoopbackDns) -> tuple[_UdpServer, _TcpServer]:
    """UDP and TCP servers on the same ephemeral port (retrying on a clash)."""
    for _ in range(20):
        udp = _UdpServer(owner)
        try:
            tcp = _TcpServer(owner, int(udp.server_address[1]))
        except OSError as exc:
            udp.server_close()
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        return udp, tcp
    raise RuntimeError("could not bind UDP and TCP to the same loopback port")
