"""A listener that accepts its connections itself, where asyncio's server cannot do
what is needed before a session starts:

- **Behind load balancers** (`proxy_protocol.enabled`): the PROXY header is
  taken off the socket first (`gateway.smtp.proxied`).
- **With several server processes** sharing the listening socket: a process
  holding more sessions than a sibling leaves a new connection to that
  sibling for a moment. The kernel wakes every process for a connection and
  the first to call accept() takes it, so an idle node tends to give a
  client's connections all to the same process (the one that last slept),
  and a burst of them mostly to one. That process then takes every message
  in on one core while the other core waits. The sibling with fewer sessions
  accepts at once; if it does not within `_LEAVE_FOR_SECONDS` (busy, or
  gone), this process accepts after all.

Everything else is as with asyncio's server: the connection goes to a
`ConnectionGate` (with TLS for implicit-TLS listeners). Listeners of a single
process without the PROXY protocol keep asyncio's own server.
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
from gateway.smtp.proxied import proxied_client, readable

log = logging.getLogger("gateway.smtp")

# How long a process with more sessions than a sibling leaves a new connection to
# it: an idle sibling wakes within a fraction of this.
_LEAVE_FOR_SECONDS = 0.005
# After a failed accept (out of file descriptors), as asyncio's own servers wait.
_ACCEPT_RETRY_SECONDS = 1.0


class Acceptor(asyncio.AbstractServer):
    """Accepts one listener's connections and starts their sessions; see the module docstring."""

    def __init__(self, ctx: ListenerContext, sock: socket.socket) -> None:
        self.ctx = ctx
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self._accepting: asyncio.Task[None] | None = None
        # Connections whose PROXY header or TLS handshake is still being read.
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
        """Stop accepting; connections still without their header or handshake are closed."""
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

    @property
    def _waits_before_session(self) -> bool:
        """Whether a connection's session starts only after a header or a handshake."""
        return self.ctx.config.proxy_protocol.enabled or self.ctx.implicit_tls

    async def _accept_forever(self) -> None:
        siblings = self.ctx.siblings
        while True:
            await readable(self.loop, self.sock)
            if siblings is not None and siblings.fewer_elsewhere():
                await asyncio.sleep(_LEAVE_FOR_SECONDS)
            try:
                conn, _address = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue  # a sibling took it, or the client left before it was accepted
            except OSError as exc:  # EMFILE and the like: the backlog waits meanwhile
                error = errno.errorcode.get(exc.errno or 0)
                name = self.ctx.config.name
                event(log, "accept_failed", logging.ERROR, listener=name, error=error)
                await asyncio.sleep(_ACCEPT_RETRY_SECONDS)
                continue
            if not self._waits_before_session:
                # Its session starts now, so the next connection sees this one counted.
                await self._take(conn)
                continue
            task = self.loop.create_task(self._take(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _take(self, conn: socket.socket) -> None:
        """Start the connection's session (after its PROXY header), or close it."""
        ctx = self.ctx
        proxied = ctx.config.proxy_protocol.enabled
        handed_on = False
        try:
            conn.setblocking(False)
            client_ip = None
            if proxied:
                client_ip = await proxied_client(ctx, conn)
                if client_ip is None:
                    return  # refused, and counted
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
            if proxied and not handed_on:
                metrics.PROXY_HEADERS.labels(ctx.config.name, "closed").inc()
        except Exception as exc:  # one connection's failure never stops the listener
            name, error = ctx.config.name, type(exc).__name__
            event(log, "session_start_failed", logging.ERROR, listener=name, error=error)
            conn.close()
        finally:
            if not handed_on:
                metrics.CONNECTIONS.labels(ctx.config.name).inc()  # else the gate counts it
                conn.close()
