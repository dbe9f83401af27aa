"""A small threaded HTTPS server on 127.0.0.1 for tests.

Serves fixed responses by path, counts what it was asked for (with the TLS
server name the client sent and its Host header), and can redirect, delay or
leave out Content-Length. POST requests are kept with their headers and body,
and may be answered from a queue of responses before the path's own:

    with HttpsServer(server_context(cert, key)) as web:
        web.serve("/.well-known/mta-sts.txt", b"version: STSv1\\r\\n...")
        web.serve("/old", status=301, headers={"Location": "https://elsewhere/"})
        ...
        assert web.count("/.well-known/mta-sts.txt") == 1
        web.serve("/hook", status=204)
        web.answer_next("/hook", 500, 500)    # two 500s, then 204 from then on

Paths not served answer 404. ``context`` may be replaced between requests to
present another certificate; the server sets its ``sni_callback``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

__all__ = ["HttpsServer", "Request", "Response"]

HOST = "127.0.0.1"
_IO_TIMEOUT = 5.0
_STOP_TIMEOUT = 2.0
_MAX_DELAY = 30.0  # a typo in a test must not hang the run


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    content_length: bool = True  # False: no Content-Length, the body ends at close


@dataclass(frozen=True)
class Request:
    path: str
    host: str | None  # the Host header
    server_name: str | None  # the TLS SNI name, None if the client sent none
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    body: bytes = b""


class HttpsServer:
    """See the module docstring."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.routes: dict[str, Response] = {}
        self.queued: dict[str, list[int]] = {}  # statuses to answer first, per path
        self.requests: list[Request] = []
        self.handshake_failures = 0
        self._context = context
        self._lock = threading.Lock()
        self._names = threading.local()  # SNI name of the connection being set up
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.context = context

    @property
    def context(self) -> ssl.SSLContext:
        return self._context

    @context.setter
    def context(self, value: ssl.SSLContext) -> None:
        value.sni_callback = self._record_server_name
        self._context = value

    def serve(
        self,
        path: str,
        body: bytes = b"",
        *,
        status: int = 200,
        content_type: str | None = "text/plain",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        content_length: bool = True,
    ) -> None:
        """Answer GET ``path`` with this response from now on."""
        if not 0 <= delay <= _MAX_DELAY:
            raise ValueError(f"delay must be between 0 and {_MAX_DELAY} seconds")
        response = Response(status, body, content_type, dict(headers or {}), delay, content_length)
        with self._lock:
            self.routes[path] = response

    def answer_next(self, path: str, *statuses: int) -> None:
        """Answer the next requests for ``path`` with these statuses, in order."""
        with self._lock:
            self.queued.setdefault(path, []).extend(statuses)

    def posted(self, path: str) -> list[Request]:
        """The POST requests for ``path`` so far, in order."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path == path]

    def count(self, path: str | None = None) -> int:
        """Requests received so far, for one path or in all."""
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server is not running")
        return int(self._server.server_address[1])

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> HttpsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- serving (server threads) ------------------------------------------

    def _record_server_name(
        self, sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, context: ssl.SSLContext
    ) -> None:
        self._names.value = name

    def _accept_tls(self, sock: socket.socket) -> tuple[ssl.SSLSocket, str | None] | None:
        sock.settimeout(_IO_TIMEOUT)
        self._names.value = None
        try:
            tls = self.context.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError):
            with self._lock:
                self.handshake_failures += 1
            sock.close()
            return None
        return tls, self._names.value

    def _route(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            queued = self.queued.get(request.path)
            if queued:
                return Response(queued.pop(0), b"")
            return self.routes.get(request.path, Response(404, b"not found\n"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a stuck client must not delay stop()

    def __init__(self, owner: HttpsServer) -> None:
        self.owner = owner
        super().__init__((HOST, 0), _Handler)

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        # The TLS handshake runs here, in the connection's own thread, so a
        # slow client does not hold up accepting the next one.
        accepted = self.owner._accept_tls(request)
        if accepted is None:
            return
        tls, server_name = accepted
        with contextlib.closing(tls):
            _Handler(tls, client_address, self, server_name)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = _IO_TIMEOUT

    def __init__(
        self,
        request: ssl.SSLSocket,
        client_address: tuple[str, int],
        server: _Server,
        server_name: str | None = None,
    ) -> None:
        self.sni_name = server_name
        super().__init__(request, client_address, server)

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(self.rfile.read(min(length, 1 << 20)))

    def _answer(self, body: bytes) -> None:
        path = self.path.partition("?")[0]
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = Request(
            path, self.headers.get("Host"), self.sni_name, self.command, headers, body
        )
        response = self.server.owner._route(request)
        if response.delay:
            time.sleep(response.delay)
        self.send_response(response.status)
        if response.content_type is not None:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.content_length:
            self.send_header("Content-Length", str(len(response.body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        with contextlib.suppress(OSError):  # the client may have given up
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet
