"""A listener behind load balancers: the PROXY protocol header first, then the session.

On a listener with `proxy_protocol.trusted`, only those load balancers may
connect, and each connection must begin with a PROXY header (v1 or v2) within
`proxy_protocol.header_timeout`. The address it names is the client's for
everything after: connection limits, AUTH lockouts, relay networks, policy
facts, the Received: field and the audit trail. Anything else is closed
without a greeting, counted, and audited at most once a minute per address.

asyncio's servers read whatever has arrived; here the header is taken off the
socket byte-exact (peeked first) before the connection becomes a transport,
because with implicit TLS the client's handshake follows the header at once
and must reach the TLS layer whole. Listeners without the PROXY protocol keep
asyncio's own server and pay nothing for this.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl

from gateway import metrics
from gateway.logs import event
from gateway.smtp.listener import ConnectionGate, ListenerContext
from gateway.smtp.proxy_protocol import (
    V1_MAX_LENGTH,
    ProxyHeader,
    ProxyHeaderError,
    header_length,
    parse_header,
)

log = logging.getLogger("gateway.smtp")

# After a failed accept (out of file descriptors), as asyncio's own servers wait.
_ACCEPT_RETRY_SECONDS = 1.0


class ProxyListener(asyncio.AbstractServer):
    """Accepts a listener's connections, reads each one's PROXY header, then hands it on."""

    def __init__(self, ctx: ListenerContext, sock: socket.socket) -> None:
        self.ctx = ctx
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self._accepting: asyncio.Task[None] | None = None
        # Connections whose header is still being read.
        self._pending: set[asyncio.Task[None]] = set()

    async def start_serving(self) -> None:
        if self._accepting is None:
            self.sock.setblocking(False)
            self._accepting = self.loop.create_task(self._accept_forever())

    def is_serving(self) -> bool:
        return self._accepting is not None and not self._accepting.done()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    def close(self) -> None:
        """Stop accepting; connections still without their header are closed."""
        if self._accepting is not None:
            self._accepting.cancel()
        for task in self._pending:
            task.cancel()

    async def wait_closed(self) -> None:
        tasks = [*self._pending, *([self._accepting] if self._accepting else [])]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def serve_forever(self) -> None:
        await self.start_serving()
        assert self._accepting is not None
        await self._accepting

    async def _accept_forever(self) -> None:
        while True:
            try:
                conn, _address = await self.loop.sock_accept(self.sock)
            except OSError as exc:  # EMFILE and the like: the backlog waits meanwhile
                error = errno.errorcode.get(exc.errno or 0)
                name = self.ctx.config.name
                event(log, "accept_failed", logging.ERROR, listener=name, error=error)
                await asyncio.sleep(_ACCEPT_RETRY_SECONDS)
                continue
            task = self.loop.create_task(self._take(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _take(self, conn: socket.socket) -> None:
        """Read the connection's header and start its session, or close it."""
        ctx = self.ctx
        settings = ctx.config.proxy_protocol
        handed_on = False
        try:
            conn.setblocking(False)
            balancer = str(conn.getpeername()[0])
            if not settings.trusts(balancer):
                self._refuse(balancer, "untrusted", "not a trusted load balancer of this listener")
                return
            try:
                async with asyncio.timeout(settings.header_timeout):
                    header = await read_header(self.loop, conn)
            except TimeoutError:
                why = f"no PROXY protocol header within {settings.header_timeout:g} s"
                self._refuse(balancer, "timeout", why)
                return
            except ProxyHeaderError as exc:  # fixed words, never the bytes received
                self._refuse(balancer, "malformed", f"PROXY protocol header refused: {exc}")
                return
            self._count("client" if header.client_ip is not None else "local")
            # A balancer's own connection (a health check) is served as the balancer.
            client_ip = header.client_ip if header.client_ip is not None else balancer
            tls = ctx.tls_context if ctx.implicit_tls else None
            handed_on = True
            await self.loop.connect_accepted_socket(
                lambda: ConnectionGate(ctx, client_ip),
                conn,
                ssl=tls,
                ssl_handshake_timeout=ctx.limits.tls_handshake_timeout if tls else None,
            )
        except (OSError, ssl.SSLError, TimeoutError):
            # The peer went away, or its TLS handshake failed or never ended; the
            # transport then closed the socket already, and a second close does nothing.
            conn.close()
            if not handed_on:
                self._count("closed")
        finally:
            if not handed_on:
                metrics.CONNECTIONS.labels(ctx.config.name).inc()  # else the gate counts it
                conn.close()

    def _refuse(self, balancer: str, result: str, why: str) -> None:
        self._count(result)
        if self.ctx.turned_away(balancer, why, None):  # logged as often as audited
            event(
                log,
                "proxy_refused",
                logging.WARNING,
                listener=self.ctx.config.name,
                client_ip=balancer,
                reason=result,
            )

    def _count(self, result: str) -> None:
        metrics.PROXY_HEADERS.labels(self.ctx.config.name, result).inc()


async def read_header(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> ProxyHeader:
    """Take the PROXY header off a non-blocking socket, and not one byte more.

    Raises ProxyHeaderError for a malformed header, ConnectionResetError if
    the peer closes first.
    """
    taken = b""
    length: int | None = None
    while length is None or len(taken) < length:
        await _readable(loop, conn)
        want = (V1_MAX_LENGTH if length is None else length) - len(taken)
        try:
            peeked = conn.recv(want, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            continue
        if not peeked:
            raise ConnectionResetError("closed before the end of the PROXY header")
        length = header_length(taken + peeked)
        # While the length is unknown, all that was peeked belongs to the header.
        take = len(peeked) if length is None else min(length - len(taken), len(peeked))
        while take:  # peeked, so there to be taken
            chunk = conn.recv(take)
            taken += chunk
            take -= len(chunk)
    return parse_header(taken)


async def _readable(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
