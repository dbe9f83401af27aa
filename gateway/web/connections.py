"""Bounds on the web app's connections, which share the SMTP process's file
descriptors.

uvicorn limits neither how many connections are open nor how long a client
may take to send its request: its keep-alive timeout runs only between
requests and stops at the first byte, so a client that connects and says
nothing, or trickles a request line or body, holds its descriptor forever.
Here, per process:

- at most `web.max_connections` connections are open, at most
  `web.max_connections_per_ip` of them from one client (an IPv4 address or
  an IPv6 /64); one more is closed at once, before anything is read;
- a client has `web.request_timeout` seconds, after connecting and after
  each response, to send a complete request (line, headers and body); then
  it is disconnected, and a handler still reading the body sees the
  disconnect.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from gateway.clients import ConnectionCounter, ConnectionLimits

# The client's states once its request is all in.
_RECEIVED = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)


class BoundedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a connection cap and a request timeout."""

    # Set per server by `bounded_protocol`.
    counter: ClassVar[ConnectionCounter]
    request_timeout: ClassVar[float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client_ip: str | None = None  # set once the connection holds a slot
        self._deadline: asyncio.TimerHandle | None = None
        # The request answered before the awaited one (None: none yet).
        self._answered: RequestResponseCycle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        client_ip = str(peer[0]) if peer else ""
        if self.counter.admit(client_ip) is not None:
            transport.abort()  # frees the descriptor now; nothing was read
            return
        self._client_ip = client_ip
        super().connection_made(transport)
        self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        if self._client_ip is not None:
            self.counter.release(self._client_ip)
            self._client_ip = None
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


def bounded_protocol(limits: ConnectionLimits, request_timeout: float) -> type[BoundedH11Protocol]:
    """The protocol class for one server's limits (uvicorn makes the instances)."""

    class Bounded(BoundedH11Protocol):
        pass

    Bounded.counter = ConnectionCounter(limits)
    Bounded.request_timeout = request_timeout
    return Bounded
