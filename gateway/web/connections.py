"""Bounds on the web app's connections, which share the SMTP process's file
descriptors.

uvicorn limits neither how many connections are open nor how long a client
may take to send its request: its keep-alive timeout runs only between
requests and stops at the first byte, so a client that connects and says
nothing, or trickles a request line or body, holds its descriptor forever.
Here, per process:

- at most `web.max_connections` connections are open, at most
  `web.max_connections_per_ip` of them from one client (an IPv4 address or
  an IPv6 /64); one more is closed as soon as it is accepted, before its TLS
  handshake: not a byte is read or written, and a flood from one address
  costs no handshakes;
- with TLS, the handshake must end within `web.request_timeout`;
- a client has `web.request_timeout` seconds, after the handshake and after
  each response, to send a complete request (line, headers and body); then
  it is disconnected, and a handler still reading the body sees the
  disconnect.

asyncio's servers start TLS before the protocol sees a connection, so the
counting is done by `AdmittingServer`, which accepts the web socket's
connections itself (as `gateway.smtp.proxied` does for listeners behind load
balancers) and hands the admitted ones to the event loop with TLS.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from gateway import metrics
from gateway.clients import ConnectionCounter
from gateway.logs import event

log = logging.getLogger("gateway.web")

# The client's states once its request is all in.
_RECEIVED = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)
# Connections accepted at most per wake-up, so that a flood cannot starve the loop.
_ACCEPTS_PER_WAKE = 64
# After a failed accept (out of file descriptors), as asyncio's own servers wait.
_ACCEPT_RETRY_SECONDS = 1.0
# Refusals are counted each, and logged at most this often per server.
_REFUSAL_LOG_SECONDS = 60.0
# errno values of accept() after which the listening socket is fine but the
# process (or system) is out of something: wait, then accept again.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Slot:
    """One connection's place in its server's counts, given back once."""

    def __init__(self, counter: ConnectionCounter, client_ip: str) -> None:
        self._counter: ConnectionCounter | None = counter
        self._client_ip = client_ip

    def release(self) -> None:
        if self._counter is not None:
            self._counter.release(self._client_ip)
            self._counter = None


class BoundedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a request timeout, holding its connection's slot."""

    # Set per server by `bounded_protocol`.
    request_timeout: ClassVar[float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot: Slot | None = None
        self._deadline: asyncio.TimerHandle | None = None
        # The request answered before the awaited one (None: none yet).
        self._answered: RequestResponseCycle | None = None

    def hold(self, slot: Slot) -> None:
        """Give `slot` back when the connection ends."""
        self._slot = slot

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        if self._slot is not None:
            self._slot.release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._check_request_received()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._await_request()
        super().on_response_complete()  # may take in a pipelined request
        self._check_request_received()

    def _await_request(self) -> None:
        self._stop_waiting()
        self._answered = self.cycle
        self._deadline = self.loop.call_later(self.request_timeout, self._too_late)

    def _check_request_received(self) -> None:
        # uvicorn starts a new request cycle once the line and headers are in;
        # h11 says when the body is.
        new_request = self.cycle is not self._answered
        if self._deadline is not None and new_request and self.conn.their_state in _RECEIVED:
            self._stop_waiting()

    def _stop_waiting(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.abort()


def bounded_protocol(request_timeout: float) -> type[BoundedH11Protocol]:
    """The protocol class for one server's request timeout (uvicorn makes the instances)."""

    class Bounded(BoundedH11Protocol):
        pass

    Bounded.request_timeout = request_timeout
    return Bounded


class AdmittingServer(asyncio.AbstractServer):
    """Accepts a listening socket's connections, counts each, and hands the admitted
    ones on (with TLS when `tls` is set); the others are closed at once.

    `protocol` makes the protocol of one admitted connection; `name` is the
    server's name in events and metrics (`web`, `metrics`).
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol: Callable[[], BoundedH11Protocol],
        counter: ConnectionCounter,
        tls: ssl.SSLContext | None,
        handshake_timeout: float,
        name: str,
    ) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self._protocol = protocol
        self._counter = counter
        self._tls = tls
        self._handshake_timeout = handshake_timeout
        self._name = name
        self._serving = False
        self._closed = asyncio.Event()
        self._retry: asyncio.TimerHandle | None = None
        # Admitted connections whose TLS handshake is still going on.
        self._handshakes: set[asyncio.Task[None]] = set()
        self._refused = 0  # since the last refusal was logged
        self._refusal_logged = -_REFUSAL_LOG_SECONDS

    async def start_serving(self) -> None:
        if not self._serving:
            self.sock.setblocking(False)
            self.loop.add_reader(self.sock.fileno(), self._accept)
            self._serving = True

    def is_serving(self) -> bool:
        return self._serving

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    def close(self) -> None:
        """Stop accepting; connections still in their TLS handshake are closed."""
        self._closed.set()
        if self._serving:
            self._serving = False
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None
            else:
                self.loop.remove_reader(self.sock.fileno())
        for task in self._handshakes:
            task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._handshakes, return_exceptions=True)

    async def serve_forever(self) -> None:
        """Accept until `close` (uvicorn itself only starts and closes the server)."""
        await self.start_serving()
        await self._closed.wait()

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                conn, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # none left, or one that left before it was accepted
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                # The backlog waits meanwhile.
                event(
                    log,
                    "accept_failed",
                    logging.ERROR,
                    server=self._name,
                    error=errno.errorcode.get(exc.errno or 0),
                )
                self.loop.remove_reader(self.sock.fileno())
                self._retry = self.loop.call_later(_ACCEPT_RETRY_SECONDS, self._resume)
                return
            self._admit(conn, str(peer[0]))

    def _resume(self) -> None:
        self._retry = None
        self.loop.add_reader(self.sock.fileno(), self._accept)

    def _admit(self, conn: socket.socket, client_ip: str) -> None:
        if self._counter.admit(client_ip) is not None:
            conn.close()  # before its handshake: nothing read, nothing written
            self._count_refusal(client_ip)
            return
        slot = Slot(self._counter, client_ip)
        task = self.loop.create_task(self._hand_on(conn, slot))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _hand_on(self, conn: socket.socket, slot: Slot) -> None:
        """The connection to its protocol once its TLS handshake is done; the slot back
        if it never gets there."""

        def protocol() -> BoundedH11Protocol:
            made = self._protocol()
            made.hold(slot)
            return made

        handed_on = False
        try:
            conn.setblocking(False)
            await self.loop.connect_accepted_socket(
                protocol,
                conn,
                ssl=self._tls,
                ssl_handshake_timeout=self._handshake_timeout if self._tls else None,
            )
            handed_on = True
        except OSError:
            pass  # the peer went away, or its handshake failed or took too long
        finally:
            if not handed_on:
                # The protocol never had the connection, so it does not give the slot
                # back; the transport closed the socket, and a second close does nothing.
                slot.release()
                conn.close()

    def _count_refusal(self, client_ip: str) -> None:
        limit = "total" if self._counter.total >= self._counter.limits.max_connections else "client"
        metrics.WEB_REFUSED.labels(self._name, limit).inc()
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged >= _REFUSAL_LOG_SECONDS:
            event(
                log,
                f"{self._name}_connections_refused",
                logging.WARNING,
                refused=self._refused,
                limit=limit,
                client_ip=client_ip,
            )
            self._refused = 0
            self._refusal_logged = now
