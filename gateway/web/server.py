"""Serving the web app with uvicorn inside phigate's own event loop.

The socket is bound before forking (`gateway.app.bind_web_socket`), like the
SMTP listeners, so with `processes: N` every process accepts on it. uvicorn runs on the loop that is
already running (no loop, signal handlers, lifespan, logging config or access
log of its own): phigate's signal handling decides when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import uvicorn
from fastapi import FastAPI

from gateway.clients import ConnectionCounter, ConnectionLimits
from gateway.logs import event
from gateway.mail import tls
from gateway.web.connections import AdmittingServer, BoundedH11Protocol, bounded_protocol

log = logging.getLogger("gateway.web")

_START_TIMEOUT = 10.0


class WebSetupError(Exception):
    """Something an admin must fix before the web app can serve."""


def web_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The server certificate's context (tls.cert_file, tls.key_file) for HTTPS."""
    try:
        return tls.server_context(cert, key)
    except (OSError, ValueError) as exc:
        raise WebSetupError(
            f"web.tls is on but the certificate {cert} or key {key} cannot be loaded ({exc}): "
            "fix tls.cert_file/tls.key_file, or set web.tls: false behind a TLS proxy"
        ) from None


class WebLimits(ConnectionLimits, Protocol):
    """How many connections a server keeps open (in all, from one client), and how long
    a request may take."""

    @property
    def request_timeout(self) -> float: ...


class _LoopServer(uvicorn.Server):
    """uvicorn's server, its sockets accepted by `AdmittingServer`s.

    uvicorn keeps its state, its protocol instances and its shutdown (stop
    accepting, let requests finish within the grace time); only the accepting
    is phigate's, so that a connection is counted before its TLS handshake.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        protocol: type[BoundedH11Protocol],
        limits: WebLimits,
        name: str,
    ) -> None:
        super().__init__(config)
        self._protocol_class = protocol  # config.http
        self._limits = limits
        self._name = name

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # SIGTERM/SIGINT belong to phigate's loop, which stops this server itself.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # its state and lifespan, no server of its own
        for sock in sockets or []:
            server = AdmittingServer(
                sock,
                self._protocol,
                ConnectionCounter(self._limits),
                self.config.ssl,
                self._limits.request_timeout,
                self._name,
            )
            await server.start_serving()
            # uvicorn's shutdown only closes its servers and waits for them.
            self.servers.append(server)  # type: ignore[arg-type]

    def _protocol(self) -> BoundedH11Protocol:
        # As uvicorn's startup makes a connection's protocol.
        return self._protocol_class(
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )


class WebServer:
    """uvicorn serving `app` on a pre-bound socket, started and stopped by phigate.

    `limits` bounds connections and request time (`web`'s for the web app);
    `name` is how its events and task are called.
    """

    def __init__(
        self,
        app: FastAPI,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None,
        grace: float,
        limits: WebLimits,
        name: str = "web",
    ) -> None:
        self.name = name
        protocol = bounded_protocol(limits.request_timeout)
        config = uvicorn.Config(
            app,
            http=protocol,
            # uvicorn answers 503 once this many connections (the requesting one
            # included) or requests in progress are open: with at most
            # max_connections connections, that bounds the requests still
            # running for clients that hung up.
            limit_concurrency=limits.max_connections + 1,
            loop="none",
            lifespan="off",
            access_log=False,  # it would write URLs, which hold unsubscribe tokens
            log_config=None,  # phigate's JSON logging stays in charge
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=max(1, math.ceil(grace)),
            ssl_context_factory=(lambda _config, _default: ssl_context) if ssl_context else None,
        )
        # uvicorn announces start and stop at INFO; phigate logs its own events.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        self._server = _LoopServer(config, protocol, limits, name)
        self._sock = sock
        self._task: asyncio.Task[None] | None = None
        self.scheme = "https" if ssl_context else "http"

    async def start(self) -> None:
        """Serve in the background; returns once the socket accepts requests."""
        self._task = asyncio.create_task(self._server.serve([self._sock]), name=self.name)
        async with asyncio.timeout(_START_TIMEOUT):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises what stopped it
                    raise RuntimeError("the web server stopped while starting")
                await asyncio.sleep(0.01)
        host, port = self._sock.getsockname()[:2]
        event(log, f"{self.name}_ready", address=f"{self.scheme}://{host}:{port}")

    @property
    def serving(self) -> bool:
        return self._task is not None and not self._task.done() and self._server.started

    async def stop(self) -> None:
        """Stop accepting, let requests in progress finish (up to the grace time), return."""
        if self._task is None:
            return
        self._server.should_exit = True
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
