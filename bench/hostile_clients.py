"""Hostile clients for bench/hostile.py: idle and slowloris connections and a failing-AUTH loop.

Run as its own process on 127.0.0.1 until SIGTERM (or --lifetime):

- `--smtp-idle N` connections to the SMTP port that read the greeting and say nothing;
- `--smtp-slow N` connections that read the greeting and dribble a partial
  EHLO line, one byte every --dribble seconds, never ending it;
- `--web-slow N` HTTPS connections to the web app that send a request line and
  then dribble header bytes, one every --dribble seconds, never ending the headers;
- `--auth-port P`: one client that does STARTTLS and repeats AUTH PLAIN with a
  wrong secret for --auth-user as fast as the server answers.

Every connection the server ends is opened again after a short pause, so the
load stays in place. The clients come from --addresses loopback addresses
(127.0.1.1, 127.0.1.2, ...; the failing-AUTH client from 127.0.2.1), so that
the legitimate sender on 127.0.0.1 is another client to the server.

Once every client has made its first attempt it prints `ready` on a line of
its own; on SIGTERM it closes everything and prints one JSON object: per kind
how many connections it opened, how many it held open (lowest and highest
while sampled after `ready`), and how each one ended.

    python bench/hostile_clients.py --smtp-port 2525 --smtp-idle 200 --smtp-slow 200 \
        --web-port 8443 --web-slow 200 --auth-port 2587 --auth-user bench
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import resource
import signal
import ssl
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from loadgen import insecure_context, run_loop  # bench/ is on sys.path

CONNECT_TIMEOUT = 10.0
REPLY_TIMEOUT = 30.0  # longer than phigate's largest AUTH back-off
RECONNECT_PAUSE = 1.0  # after the server ended a connection
# A web connection the server closes this soon after connecting, without a
# response, was turned away at its connection limit.
TURNED_AWAY_SECONDS = 1.0
SAMPLE_INTERVAL = 0.25
MAX_CONNECTS_PER_CLIENT = 100_000  # bounds every reconnect loop
SLOW_EHLO = b"EHLO slow-client-that-never-ends-its-line.example"
SLOW_HEADER = b"X-Slow: " + b"a" * 4000
WRONG_SECRET = "not-the-secret"


@dataclass
class KindStats:
    """What happened to the connections of one kind."""

    target: int
    open_now: int = 0
    open_min: int | None = None
    open_max: int = 0
    connects: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    # Seconds each connection had been open when the server closed it after a while.
    held_seconds: list[float] = field(default_factory=list)

    def opened(self) -> None:
        self.connects += 1
        self.open_now += 1

    def ended(self, outcome: str, held: float | None = None) -> None:
        self.open_now -= 1
        self.outcomes[outcome] += 1
        if held is not None:
            self.held_seconds.append(held)

    def sample(self) -> None:
        lowest = self.open_now if self.open_min is None else self.open_min
        self.open_min = min(lowest, self.open_now)
        self.open_max = max(self.open_max, self.open_now)

    def report(self) -> dict[str, Any]:
        held = sorted(self.held_seconds)
        return {
            "target": self.target,
            "connects": self.connects,
            "open_min": self.open_min or 0,
            "open_max": self.open_max,
            "outcomes": dict(self.outcomes),
            "held_seconds_median": held[len(held) // 2] if held else None,
            "held_seconds_max": held[-1] if held else None,
        }


@dataclass
class AuthStats:
    """The failing-AUTH client: replies by code and how long each took."""

    sessions: int = 0
    attempts: int = 0
    replies: Counter[str] = field(default_factory=Counter)
    setup_failures: Counter[str] = field(default_factory=Counter)
    reply_ms: list[float] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        ms = sorted(self.reply_ms)
        return {
            "sessions": self.sessions,
            "attempts": self.attempts,
            "replies": dict(self.replies),
            "setup_failures": dict(self.setup_failures),
            "reply_ms_median": ms[len(ms) // 2] if ms else None,
            "reply_ms_max": ms[-1] if ms else None,
        }


@dataclass(frozen=True)
class Options:
    smtp_port: int | None
    smtp_idle: int
    smtp_slow: int
    web_port: int | None
    web_slow: int
    auth_port: int | None
    auth_user: str
    addresses: int
    dribble: float
    lifetime: float


class Stopping:
    """Set once the clients are to close everything (SIGTERM or the lifetime)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    @property
    def is_set(self) -> bool:
        return self.event.is_set()

    async def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True once stopping."""
        try:
            await asyncio.wait_for(self.event.wait(), seconds)
        except TimeoutError:
            return False
        return True


def source_address(index: int, count: int) -> str:
    """The index-th hostile client's loopback address, round robin over `count` of them."""
    return f"127.0.1.{1 + index % count}"


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    """One SMTP reply (its last line); b"" once the server closed."""
    for _ in range(100):  # bounded: phigate's longest reply has a dozen lines
        line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
        if line[3:4] != b"-":
            return line
    return b""


def reply_kind(reply: bytes) -> str:
    """A short name for a refusal: its code and text up to the first ';'."""
    text = reply.decode("ascii", "replace").strip()
    return text.split(";")[0][:80] if text else "closed without a reply"


async def hold(
    stopping: Stopping,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    dribble: bytes,
    interval: float,
) -> bytes | None:
    """Keep a connection open, sending one byte of `dribble` every `interval` seconds,
    until the server ends it (returns what it said meanwhile) or we stop (None)."""
    sent = 0
    said = b""
    while not stopping.is_set:  # bounded by --lifetime, which sets stopping
        try:
            data = await asyncio.wait_for(reader.read(4096), interval)
        except TimeoutError:
            if dribble:
                at = sent % len(dribble)
                writer.write(dribble[at : at + 1])
                sent += 1
            continue
        except (OSError, ssl.SSLError):
            data = b""
        if not data:
            return said
        said += data
    return None


Connect = Callable[[str], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
# Given a fresh connection: how it ended ("held until the end" when we stopped).
Session = Callable[[asyncio.StreamReader, asyncio.StreamWriter, float], Awaitable[str]]


async def keep_connected(
    index: int,
    opts: Options,
    stats: KindStats,
    stopping: Stopping,
    connect: Connect,
    session: Session,
    ready: Callable[[], None],
) -> None:
    """Open a connection, let `session` hold it, record how it ended; again until stopping."""
    for attempt in range(MAX_CONNECTS_PER_CLIENT):
        if stopping.is_set:
            return
        try:
            reader, writer = await asyncio.wait_for(
                connect(source_address(index, opts.addresses)), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            stats.outcomes[f"connect failed: {type(exc).__name__}"] += 1
            if attempt == 0:
                ready()
        else:
            opened_at = time.monotonic()
            stats.opened()
            if attempt == 0:
                ready()
            try:
                outcome = await session(reader, writer, opened_at)
            except (OSError, TimeoutError) as exc:
                outcome = f"error: {type(exc).__name__}"
            finally:
                writer.close()
            held = time.monotonic() - opened_at
            stats.ended(outcome, held if outcome.startswith("closed by the server") else None)
        await stopping.wait(RECONNECT_PAUSE)


def smtp_session(opts: Options, stopping: Stopping, slow: bool) -> Session:
    async def session(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _opened_at: float
    ) -> str:
        greeting = await read_reply(reader)
        if not greeting.startswith(b"220"):
            return f"turned away: {reply_kind(greeting)}"
        said = await hold(stopping, reader, writer, SLOW_EHLO if slow else b"", opts.dribble)
        if said is None:
            return "held until the end"
        return f"closed by the server: {reply_kind(said)}"

    return session


def web_session(opts: Options, stopping: Stopping) -> Session:
    async def session(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, opened_at: float
    ) -> str:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: phigate.bench.example.org\r\n")
        said = await hold(stopping, reader, writer, SLOW_HEADER, opts.dribble)
        if said is None:
            return "held until the end"
        if said:
            status_line = said.split(b"\r\n", 1)[0].decode("ascii", "replace")
            return f"answered: {status_line[:60]}"
        if time.monotonic() - opened_at < TURNED_AWAY_SECONDS:
            return "closed at once (connection limit)"
        return "closed by the server without a response"

    return session


async def auth_client(opts: Options, stats: AuthStats, stopping: Stopping) -> None:
    """STARTTLS, then AUTH PLAIN with a wrong secret again and again; reconnect when closed."""
    assert opts.auth_port is not None
    ctx = insecure_context()
    token = base64.b64encode(f"\0{opts.auth_user}\0{WRONG_SECRET}".encode()).decode()
    for _ in range(MAX_CONNECTS_PER_CLIENT):
        if stopping.is_set:
            return
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", opts.auth_port, local_addr=("127.0.2.1", 0)),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            stats.setup_failures[type(exc).__name__] += 1
            await stopping.wait(RECONNECT_PAUSE)
            continue
        stats.sessions += 1
        try:
            await _auth_session(reader, writer, ctx, token, stats, stopping)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            stats.setup_failures[type(exc).__name__] += 1
        finally:
            writer.close()


async def _auth_session(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ctx: ssl.SSLContext,
    token: str,
    stats: AuthStats,
    stopping: Stopping,
) -> None:
    steps: list[tuple[bytes | None, bytes]] = [
        (None, b"220"),
        (b"EHLO guesser.example\r\n", b"250"),
        (b"STARTTLS\r\n", b"220"),
    ]
    for line, expected in steps:
        if line is not None:
            writer.write(line)
        reply = await read_reply(reader)
        if not reply.startswith(expected):
            stats.setup_failures[reply_kind(reply)] += 1
            await stopping.wait(RECONNECT_PAUSE)
            return
    await writer.start_tls(ctx)
    writer.write(b"EHLO guesser.example\r\n")
    await read_reply(reader)
    for _ in range(MAX_CONNECTS_PER_CLIENT):  # bounded: the server closes well before
        if stopping.is_set:
            return
        start = time.perf_counter()
        writer.write(f"AUTH PLAIN {token}\r\n".encode())
        reply = await read_reply(reader)
        stats.reply_ms.append((time.perf_counter() - start) * 1000.0)
        stats.attempts += 1
        stats.replies[reply_kind(reply)[:3] or "closed"] += 1
        if not reply or reply.startswith(b"421"):
            return


async def sample(stats: list[KindStats], stopping: Stopping) -> None:
    # Checked again on waking: clients that saw the stop first may have closed already.
    while not await stopping.wait(SAMPLE_INTERVAL) and not stopping.is_set:
        for kind in stats:
            kind.sample()


async def run(opts: Options) -> dict[str, Any]:
    stopping = Stopping()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.event.set)
    loop.call_later(opts.lifetime, stopping.event.set)
    kinds = {
        "smtp-idle": KindStats(opts.smtp_idle if opts.smtp_port else 0),
        "smtp-slowloris": KindStats(opts.smtp_slow if opts.smtp_port else 0),
        "web-slowloris": KindStats(opts.web_slow if opts.web_port else 0),
    }
    auth = AuthStats()
    waiting = sum(k.target for k in kinds.values())
    all_ready = asyncio.Event()

    def one_ready() -> None:
        nonlocal waiting
        waiting -= 1
        if waiting <= 0:
            all_ready.set()

    if waiting == 0:
        all_ready.set()
    smtp_port, web_port, web_tls = opts.smtp_port, opts.web_port, insecure_context()

    async def smtp_connect(source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", smtp_port, local_addr=(source, 0))

    async def web_connect(source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(
            "127.0.0.1", web_port, ssl=web_tls, local_addr=(source, 0)
        )

    plan = [
        ("smtp-idle", smtp_connect, smtp_session(opts, stopping, slow=False)),
        ("smtp-slowloris", smtp_connect, smtp_session(opts, stopping, slow=True)),
        ("web-slowloris", web_connect, web_session(opts, stopping)),
    ]
    clients: list[Awaitable[None]] = [
        keep_connected(i, opts, kinds[name], stopping, connect, session, one_ready)
        for name, connect, session in plan
        for i in range(kinds[name].target)
    ]
    if opts.auth_port is not None:
        clients.append(auth_client(opts, auth, stopping))
    tasks = [asyncio.ensure_future(client) for client in clients]
    await asyncio.wait_for(all_ready.wait(), opts.lifetime)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sampler = asyncio.ensure_future(sample(list(kinds.values()), stopping))
    await stopping.event.wait()
    await asyncio.wait_for(asyncio.gather(*tasks, sampler, return_exceptions=True), 60.0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        **{name: kind.report() for name, kind in kinds.items() if kind.target},
        "auth": auth.report() if opts.auth_port is not None else None,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smtp-port", type=int)
    parser.add_argument("--smtp-idle", type=int, default=0)
    parser.add_argument("--smtp-slow", type=int, default=0)
    parser.add_argument("--web-port", type=int)
    parser.add_argument("--web-slow", type=int, default=0)
    parser.add_argument("--auth-port", type=int, help="STARTTLS port for the failing-AUTH client.")
    parser.add_argument("--auth-user", default="bench")
    parser.add_argument(
        "--addresses", type=int, default=10, help="Loopback addresses the connections come from."
    )
    parser.add_argument(
        "--dribble", type=float, default=2.0, help="Seconds between slowloris bytes."
    )
    parser.add_argument("--lifetime", type=float, default=900.0, help="Stop after this long.")
    args = parser.parse_args(argv)
    if not 1 <= args.addresses <= 254:
        parser.error("--addresses must be 1..254")
    if any(not 0 <= n <= 5000 for n in (args.smtp_idle, args.smtp_slow, args.web_slow)):
        parser.error("connection counts must be 0..5000")
    if not 0.05 <= args.dribble <= 60 or not 1 <= args.lifetime <= 3600:
        parser.error("--dribble must be 0.05..60 s and --lifetime 1..3600 s")
    opts = Options(
        smtp_port=args.smtp_port,
        smtp_idle=args.smtp_idle,
        smtp_slow=args.smtp_slow,
        web_port=args.web_port,
        web_slow=args.web_slow,
        auth_port=args.auth_port,
        auth_user=args.auth_user,
        addresses=args.addresses,
        dribble=args.dribble,
        lifetime=args.lifetime,
    )
    result = run_loop(run(opts))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
