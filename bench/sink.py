"""A fast SMTP sink for the relay benchmark: accepts everything, keeps nothing, counts messages.

Used when Postfix's smtp-sink is not installed. It speaks just enough ESMTP
for a relay's delivery client (EHLO/HELO, MAIL, RCPT, DATA with
dot-termination, RSET, NOOP, QUIT; PIPELINING is fine) and throws the content
away. The number of messages received so far is served on a control port:
connect, send ``COUNT`` and read one line with the number (``TLS``: those
received over TLS).

With --tls-cert and --tls-key it offers STARTTLS with that certificate (the
realistic mix of bench/versus_postfix.py, where the relays verify it); with
--dump it appends every message it receives to that file.

    python bench/sink.py --port 2600 --control-port 2601
    python bench/sink.py --port 2600 --control-port 2601 --tls-cert C --tls-key K
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, BinaryIO, cast

MAX_LINE = 4096
EXTENSIONS = (b"PIPELINING", b"8BITMIME", b"SIZE 104857600", b"ENHANCEDSTATUSCODES")


def ehlo_reply(starttls: bool) -> bytes:
    lines: list[bytes] = [b"bench-sink", *EXTENSIONS, *([b"STARTTLS"] if starttls else [])]
    return b"".join(b"250-" + line + b"\r\n" for line in lines[:-1]) + b"250 " + lines[-1] + b"\r\n"


EHLO_REPLY = ehlo_reply(starttls=False)
EHLO_REPLY_STARTTLS = ehlo_reply(starttls=True)
END_OF_DATA = b"\r\n.\r\n"


class Counters:
    """What the control channel reports."""

    def __init__(self) -> None:
        self.messages = 0
        self.tls_messages = 0
        self.sessions = 0


class SinkProtocol(asyncio.Protocol):
    """One SMTP session, parsed straight from the byte buffer (no streams, no per-line tasks)."""

    def __init__(
        self,
        counters: Counters,
        idle_timeout: float,
        tls: ssl.SSLContext | None = None,
        dump: BinaryIO | None = None,
    ) -> None:
        self.counters = counters
        self.idle_timeout = idle_timeout
        self.tls = tls  # offered with STARTTLS until the session is encrypted
        self.encrypted = False
        self.upgrade: asyncio.Future[None] | None = None  # the STARTTLS handshake
        self.dump = dump
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.in_data = False
        self.have_sender = False
        self.recipients = 0
        self.closing = False
        self.last_activity = time.monotonic()
        self.idle_handle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.counters.sessions += 1
        self.transport.write(b"220 bench-sink ESMTP\r\n")
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        self.transport = None

    def _arm_idle(self) -> None:
        loop = asyncio.get_running_loop()
        self.idle_handle = loop.call_later(self.idle_timeout, self._check_idle)

    def _check_idle(self) -> None:
        if self.transport is None:
            return
        quiet = time.monotonic() - self.last_activity
        if quiet >= self.idle_timeout:
            self.transport.write(b"421 4.4.2 Idle timeout\r\n")
            self.transport.close()
            return
        loop = asyncio.get_running_loop()
        self.idle_handle = loop.call_later(self.idle_timeout - quiet, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if self.closing or self.transport is None:
            return
        self.last_activity = time.monotonic()
        buf = self.buffer
        buf += data
        replies: list[bytes] = []
        while buf and not self.closing:
            if self.in_data:
                # The buffer starts with a CRLF sentinel, so a lone "." line right
                # after the 354 is found as well.
                end = buf.find(END_OF_DATA)
                if end < 0:
                    if len(buf) > 4:
                        self._keep(buf[:-4])
                        del buf[:-4]  # keep a possible partial terminator
                    break
                self._keep(buf[:end], last=True)
                del buf[: end + len(END_OF_DATA)]
                self.in_data = False
                self.have_sender = False
                self.recipients = 0
                self.counters.messages += 1
                self.counters.tls_messages += self.encrypted
                replies.append(b"250 2.0.0 Ok: queued\r\n")
                continue
            eol = buf.find(b"\r\n")
            if eol < 0:
                if len(buf) > MAX_LINE:
                    replies.append(b"500 5.5.2 Line too long\r\n")
                    self.closing = True
                break
            line = bytes(buf[:eol])
            del buf[: eol + 2]
            if line[:8].upper() == b"STARTTLS" and self.tls is not None and not self.encrypted:
                # What a client pipelined after STARTTLS is dropped (RFC 3207, section 4.2).
                buf.clear()
                replies.append(b"220 2.0.0 Ready to start TLS\r\n")
                self.transport.write(b"".join(replies))
                self.upgrade = asyncio.ensure_future(self._start_tls(self.transport, self.tls))
                return
            replies.append(self._command(line))
            if self.in_data:
                buf[:0] = b"\r\n"
        if replies:
            self.transport.write(b"".join(replies))
        if self.closing:
            self.transport.close()

    async def _start_tls(self, transport: asyncio.Transport, tls: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        try:
            encrypted = await loop.start_tls(transport, self, tls, server_side=True)
        except (OSError, ssl.SSLError, ConnectionError):
            transport.close()
            return
        if encrypted is None:
            transport.close()
            return
        self.transport = encrypted
        self.encrypted = True
        self.have_sender = False
        self.recipients = 0

    def _keep(self, data: bytearray, last: bool = False) -> None:
        """Append message content to the dump file (with the CRLF sentinel that starts
        each message's data), each message ended by a blank line."""
        if self.dump is not None:
            self.dump.write(data)
            if last:
                self.dump.write(b"\r\n\r\n")
                self.dump.flush()  # each message whole in the file once it is answered

    def _command(self, line: bytes) -> bytes:
        verb = line[:4].upper()
        if verb == b"MAIL":
            self.have_sender = True
            self.recipients = 0
            return b"250 2.1.0 Ok\r\n"
        if verb == b"RCPT":
            if not self.have_sender:
                return b"503 5.5.1 Need MAIL first\r\n"
            self.recipients += 1
            return b"250 2.1.5 Ok\r\n"
        if verb == b"DATA":
            if not self.recipients:
                return b"503 5.5.1 Need RCPT first\r\n"
            self.in_data = True
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if verb == b"RSET":
            self.have_sender = False
            self.recipients = 0
            return b"250 2.0.0 Ok\r\n"
        if verb == b"EHLO":
            self.have_sender = False
            self.recipients = 0
            return (
                EHLO_REPLY_STARTTLS if self.tls is not None and not self.encrypted else EHLO_REPLY
            )
        if verb == b"HELO":
            return b"250 bench-sink\r\n"
        if verb == b"NOOP":
            return b"250 2.0.0 Ok\r\n"
        if verb == b"QUIT":
            self.closing = True
            return b"221 2.0.0 Bye\r\n"
        return b"502 5.5.1 Command not implemented\r\n"


async def serve_control(
    counters: Counters, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer COUNT (and TLS, SESSIONS) lines until the client goes away."""
    try:
        for _ in range(10_000_000):  # bounded; a poller asks a few times a second
            line = await reader.readline()
            if not line:
                break
            command = line.strip().upper()
            if command == b"COUNT":
                writer.write(b"%d\n" % counters.messages)
            elif command == b"TLS":
                writer.write(b"%d\n" % counters.tls_messages)
            elif command == b"SESSIONS":
                writer.write(b"%d\n" % counters.sessions)
            else:
                writer.write(b"ERR\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main_async(
    host: str,
    port: int,
    control_port: int,
    idle_timeout: float,
    lifetime: float,
    tls: ssl.SSLContext | None = None,
    dump: BinaryIO | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    counters = Counters()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(
        lambda: SinkProtocol(counters, idle_timeout, tls, dump),
        host,
        port,
        backlog=1024,
        reuse_address=True,
    )
    control = await asyncio.start_server(
        lambda r, w: serve_control(counters, r, w), host, control_port, reuse_address=True
    )
    print(f"ready {port} {control_port}", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), lifetime)  # never outlives its benchmark
    server.close()
    control.close()
    print(f"messages {counters.messages} sessions {counters.sessions}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--idle-timeout", type=float, default=120.0)
    parser.add_argument(
        "--lifetime",
        type=float,
        default=3600.0,
        help="Exit after this many seconds even if never told to stop.",
    )
    parser.add_argument("--tls-cert", type=Path, help="Offer STARTTLS with this certificate (PEM).")
    parser.add_argument("--tls-key", type=Path, help="The certificate's key (PEM).")
    parser.add_argument("--dump", type=Path, help="Append every message received to this file.")
    args = parser.parse_args(argv)
    if not args.host.startswith("127."):
        parser.error("the sink only listens on loopback (127.0.0.0/8)")
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    tls = None
    if args.tls_cert is not None:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    with contextlib.ExitStack() as stack:
        dump = stack.enter_context(args.dump.open("ab")) if args.dump is not None else None
        run(
            main_async(
                args.host,
                args.port,
                args.control_port,
                args.idle_timeout,
                args.lifetime,
                tls,
                dump,
            )
        )
    return 0


def run(main_coroutine: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed, else on the standard event loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_coroutine)
    else:
        uvloop.run(main_coroutine)


if __name__ == "__main__":
    sys.exit(main())
