"""A listener behind load balancers: the PROXY protocol header first, then the session.

On a listener with `proxy_protocol.trusted`, only those load balancers may
connect, and each connection must begin with a PROXY header (v1 or v2) within
`proxy_protocol.header_timeout`. The address it names is the client's for
everything after: connection limits, AUTH lockouts, relay networks, policy
facts, the Received: field and the audit trail. Anything else is closed
without a greeting, counted, and audited at most once a minute per address.

asyncio's servers read whatever has arrived; here the header is taken off the
socket byte-exact (peeked first) before the connection becomes a transport
(by `gateway.smtp.acceptor`), because with implicit TLS the client's
handshake follows the header at once and must reach the TLS layer whole.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from gateway import metrics
from gateway.logs import event
from gateway.smtp.listener import ListenerContext
from gateway.smtp.proxy_protocol import (
    V1_MAX_LENGTH,
    ProxyHeader,
    ProxyHeaderError,
    header_length,
    parse_header,
)

log = logging.getLogger("gateway.smtp")


async def proxied_client(ctx: ListenerContext, conn: socket.socket) -> str | None:
    """The client a trusted balancer's PROXY header names on a new connection, or
    None once the connection is refused (counted, and audited as `turned_away` says).

    A balancer's own connection (a health check) is served as the balancer.
    Raises OSError if the peer goes away meanwhile.
    """
    settings = ctx.config.proxy_protocol
    balancer = str(conn.getpeername()[0])
    if not settings.trusts(balancer):
        _refuse(ctx, balancer, "untrusted", "not a trusted load balancer of this listener")
        return None
    try:
        async with asyncio.timeout(settings.header_timeout):
            header = await read_header(asyncio.get_running_loop(), conn)
    except TimeoutError:
        why = f"no PROXY protocol header within {settings.header_timeout:g} s"
        _refuse(ctx, balancer, "timeout", why)
        return None
    except ProxyHeaderError as exc:  # fixed words, never the bytes received
        _refuse(ctx, balancer, "malformed", f"PROXY protocol header refused: {exc}")
        return None
    _count(ctx, "client" if header.client_ip is not None else "local")
    return header.client_ip if header.client_ip is not None else balancer


def _refuse(ctx: ListenerContext, balancer: str, result: str, why: str) -> None:
    _count(ctx, result)
    if ctx.turned_away(balancer, why, None):  # logged as often as audited
        event(
            log,
            "proxy_refused",
            logging.WARNING,
            listener=ctx.config.name,
            client_ip=balancer,
            reason=result,
        )


def _count(ctx: ListenerContext, result: str) -> None:
    metrics.PROXY_HEADERS.labels(ctx.config.name, result).inc()


async def read_header(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> ProxyHeader:
    """Take the PROXY header off a non-blocking socket, and not one byte more.

    Raises ProxyHeaderError for a malformed header, ConnectionResetError if
    the peer closes first.
    """
    taken = b""
    length: int | None = None
    while length is None or len(taken) < length:
        await readable(loop, conn)
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


async def readable(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    """Until the socket has something to read (a listening socket: a connection to accept)."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
