"""Load generator for the relay benchmark: N SMTP sessions sending a fixed message back to back.

Each session opens one connection (to the --port values in turn when several
are given; optionally STARTTLS, certificate not verified, then AUTH once) and,
after every session is ready, sends messages one after another (MAIL, RCPT,
DATA; one recipient, about 5 KB or --size) until the run's total is used up.
With --mix the messages are the realistic mix of
bench/mail_mix.py instead: 5 KB, 50 KB and 2 MB by 70/25/5 of the count, a
third of them with PHI, each fixed by its index in the run; their bodies are
made before the run starts and repeat every BODY_CYCLE messages; with
--mix-size KB, only the mix's messages of that size class (mail_mix.mix_index),
a cycle's share of the bodies. It prints one
JSON object: counts, the bytes of the accepted messages (and with --mix how
many of them carry PHI), per-message accept latencies (DATA command to the 250
reply), the queue IDs from the 250 replies, monotonic timestamps of the first
submission and the last 250, and its own CPU from opening its sessions on.
DATA goes out through aiosmtplib, whose line-end and dot-stuffing regular
expressions are replaced here by bytes methods that give the same bytes (see
crlf_lines), so that a 2 MB message's latency is the server's, not the client's.

    python bench/loadgen.py --port 2525 --sessions 10 --messages 2000
    LOADGEN_SECRET=S python bench/loadgen.py --port 2587 --starttls --user bench ...
    python bench/loadgen.py --port 2525 --mix --messages 300
    python bench/loadgen.py --port 2525 --port 2526 --sessions 10   # 5 sessions to each
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
import aiosmtplib.protocol
from mail_mix import (  # bench/ is on sys.path
    SIZE_CLASSES_KB,
    SIZE_CYCLE,
    carries_phi,
    make_mixed_message,
    mix_index,
    size_class,
)

from gateway.mail.line_ends import counted_crlf_only

MESSAGE_SIZE = 5 * 1024
SENDER = "loadgen@bench.example.org"
RECIPIENT = "inbox@sink.bench-partner.org"


# aiosmtplib's own, for messages whose line ends are not all CRLF.
AIOSMTPLIB_CRLF = aiosmtplib.protocol.normalize_message_line_endings


def crlf_lines(message: bytes) -> bytes:
    """aiosmtplib's normalize_message_line_endings, giving the same bytes.

    aiosmtplib rewrites every line end of every message with a regular expression,
    and doubles each leading dot with another: 34 ms of this process's CPU for a
    2 MB message, spent between the DATA command and the 250 it times, and so
    counted in the latency of the system under test. The messages made here end
    their lines in CRLF already, which three counts confirm (3 ms); any other
    message is still rewritten by aiosmtplib's own function.
    """
    if counted_crlf_only(message):
        return message if message.endswith(b"\r\n") else message + b"\r\n"
    result: bytes = AIOSMTPLIB_CRLF(message)
    return result


class LeadingDots:
    """aiosmtplib's PERIOD_REGEX, `(?m)^\\.`, for the one use it has: sub(b"..", message)
    doubles the dot that begins a line. By bytes methods: 2 ms for 2 MB, not 16."""

    def sub(self, replacement: bytes, message: bytes) -> bytes:
        if replacement != b"..":
            raise ValueError("LeadingDots only doubles leading dots")
        stuffed = message.replace(b"\n.", b"\n..")
        return b"." + stuffed if stuffed.startswith(b".") else stuffed


def send_data_by_bytes_methods() -> None:
    """aiosmtplib's DATA (protocol.SMTPProtocol.execute_data_command) to call crlf_lines
    and LeadingDots, in this process only: for the load generator's main, not on import."""
    aiosmtplib.protocol.normalize_message_line_endings = crlf_lines
    aiosmtplib.protocol.PERIOD_REGEX = LeadingDots()


def message_head(run_id: str, index: int, marketing: bool = False) -> str:
    """The headers up to MIME-Version (the body's own Content-Type follows), CRLF endings,
    a unique Message-ID; with `marketing`, marked as such (consent is then checked)."""
    return (
        ("X-Phigate-Category: marketing\r\n" if marketing else "")
        + f"From: Bench Sender <{SENDER}>\r\n"
        f"To: <{RECIPIENT}>\r\n"
        f"Subject: relay benchmark {run_id} #{index}\r\n"
        "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        f"Message-ID: <{run_id}.{index}@bench.example.org>\r\n"
        "MIME-Version: 1.0\r\n"
    )


def make_message(
    run_id: str, index: int, size: int = MESSAGE_SIZE, marketing: bool = False
) -> bytes:
    """A plain text message of about `size` bytes (see message_head)."""
    head = (
        message_head(run_id, index, marketing)
        + "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog; lorem ipsum dolor sit amet.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


# The mix's bodies repeat every BODY_CYCLE messages (a multiple of its 20 sizes and of
# its every third with PHI), made before the run: making a 2 MB message takes about
# 18 ms of this process's CPU, which would otherwise be taken from the system under
# test on a machine both share. Each message still has its own header block.
BODY_CYCLE = 600


def mixed_bodies(run_id: str, count: int, marketing: bool, only: int | None = None) -> list[bytes]:
    """The bodies (after message_head) of the mix's first `count` messages, at most a
    cycle; with `only`, of its messages of that size (mix_index), a cycle's share of them."""
    cycle = BODY_CYCLE * (SIZE_CYCLE.count(only) if only else len(SIZE_CYCLE)) // len(SIZE_CYCLE)
    bodies = []
    for number in range(max(1, min(count, cycle))):
        head = message_head(run_id, number, marketing)
        content = make_mixed_message(head, mix_index(number, only)).content
        bodies.append(content[len(head) :])  # ASCII head
    return bodies


def content_at(state: RunState, index: int) -> bytes:
    if state.mix:
        head = message_head(state.run_id, index, state.marketing).encode()
        return head + state.bodies[index % len(state.bodies)]
    return make_message(state.run_id, index, state.size, state.marketing)


def insecure_context() -> ssl.SSLContext:
    # phigate's benchmark certificate is self-signed.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class RunState:
    """Shared by the sessions of one run (all in one event loop, so no locks)."""

    total: int
    deadline: float
    run_id: str
    marketing: bool = False
    size: int = MESSAGE_SIZE
    mix: bool = False
    mix_size: int | None = None  # with mix: only its messages of this size
    rate: float = 0.0  # messages per second for the whole run; 0: as fast as replies come
    started: float = field(default_factory=time.monotonic)
    next_index: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    latencies_by_size: dict[int, list[float]] = field(default_factory=dict)  # with mix
    queue_ids: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    accepted_bytes: int = 0
    accepted_phi: int = 0  # with mix
    first_submit: float | None = None
    last_accept: float | None = None
    bodies: list[bytes] = field(default_factory=list)  # with mix: mixed_bodies

    def take(self) -> int | None:
        if self.next_index >= self.total or time.monotonic() >= self.deadline:
            return None
        self.next_index += 1
        return self.next_index - 1


@dataclass(frozen=True)
class Options:
    host: str
    ports: tuple[int, ...]  # session i connects to ports[i % len(ports)]
    sessions: int
    messages: int
    starttls: bool
    user: str | None
    secret: str | None
    timeout: float
    time_limit: float
    run_id: str
    marketing: bool = False
    size: int = MESSAGE_SIZE
    mix: bool = False
    mix_size: int | None = None
    rate: float = 0.0


async def open_session(opts: Options, ctx: ssl.SSLContext, port: int) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(
        hostname=opts.host,
        port=port,
        local_hostname="loadgen.bench.example.org",
        timeout=opts.timeout,
        start_tls=False,
        use_tls=False,
    )
    await client.connect()
    await client.ehlo()
    if opts.starttls:
        await client.starttls(tls_context=ctx)
        await client.ehlo()
        if opts.user is not None and opts.secret is not None:
            await client.login(opts.user, opts.secret)
    return client


async def send_loop(client: aiosmtplib.SMTP, state: RunState) -> None:
    """Send messages on one connection until the run's total is used up."""
    for _ in range(state.total):  # bounded: at most the whole run on one session
        index = state.take()
        if index is None:
            return
        if state.rate:
            # Open loop: message i is due i/rate seconds into the run, whatever the replies.
            await asyncio.sleep(max(0.0, state.started + index / state.rate - time.monotonic()))
        content = content_at(state, index)
        now = time.monotonic()
        if state.first_submit is None:
            state.first_submit = now
        state.sent += 1
        try:
            await client.mail(SENDER)
            await client.rcpt(RECIPIENT)
            start = time.perf_counter()
            reply = await client.data(content)
            elapsed = time.perf_counter() - start
        except aiosmtplib.SMTPResponseException as exc:
            state.refused[str(exc.code)] += 1
            try:
                await client.rset()
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as rset_exc:
                state.errors[type(rset_exc).__name__] += 1
                return
            continue
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # The connection is gone; this message got no 250, so it is not counted as accepted.
            state.errors[type(exc).__name__] += 1
            return
        if reply.code != 250:
            state.refused[str(reply.code)] += 1
            continue
        state.last_accept = time.monotonic()
        state.accepted_bytes += len(content)
        state.latencies_ms.append(elapsed * 1000.0)
        if state.mix:
            in_mix = mix_index(index, state.mix_size)
            state.accepted_phi += carries_phi(in_mix)
            state.latencies_by_size.setdefault(size_class(in_mix), []).append(elapsed * 1000.0)
        state.queue_ids.append(reply.message.rsplit(" ", 1)[-1])


async def run(opts: Options) -> dict[str, Any]:
    bodies = (
        mixed_bodies(opts.run_id, opts.messages, opts.marketing, opts.mix_size) if opts.mix else []
    )
    made = resource.getrusage(resource.RUSAGE_SELF)  # the CPU reported is the sending's
    ctx = insecure_context()
    setup_start = time.monotonic()
    opened = await asyncio.gather(
        *(open_session(opts, ctx, opts.ports[i % len(opts.ports)]) for i in range(opts.sessions)),
        return_exceptions=True,
    )
    clients = [c for c in opened if isinstance(c, aiosmtplib.SMTP)]
    setup_errors = Counter(type(c).__name__ for c in opened if isinstance(c, BaseException))
    setup_seconds = time.monotonic() - setup_start
    state = RunState(
        total=opts.messages,
        deadline=time.monotonic() + opts.time_limit,
        run_id=opts.run_id,
        marketing=opts.marketing,
        size=opts.size,
        mix=opts.mix,
        mix_size=opts.mix_size,
        rate=opts.rate,
        bodies=bodies,
    )
    state.errors.update({f"setup:{name}": n for name, n in setup_errors.items()})
    if clients:
        await asyncio.gather(*(send_loop(c, state) for c in clients))
    for client in clients:
        try:
            await client.quit(timeout=5)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "sessions": opts.sessions,
        "sessions_opened": len(clients),
        "requested": opts.messages,
        "sent": state.sent,
        "accepted": len(state.latencies_ms),
        "accepted_bytes": state.accepted_bytes,
        "accepted_phi": state.accepted_phi,
        "refused": dict(state.refused),
        "errors": dict(state.errors),
        "setup_seconds": setup_seconds,
        "first_submit": state.first_submit,
        "last_accept": state.last_accept,
        "latencies_ms": state.latencies_ms,
        "latencies_by_size": {str(size): ms for size, ms in state.latencies_by_size.items()},
        "queue_ids": state.queue_ids,
        "cpu_seconds": usage.ru_utime + usage.ru_stime - made.ru_utime - made.ru_stime,
        "message_bytes": len(content_at(state, 0)),
    }


def run_loop(main_coroutine: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run on uvloop when it is installed, else on the standard event loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main_coroutine)
    return uvloop.run(main_coroutine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=int,
        action="append",
        required=True,
        help="Repeat to spread the sessions over several ports (round robin).",
    )
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000, help="Messages in the whole run.")
    parser.add_argument("--starttls", action="store_true", help="STARTTLS before sending.")
    parser.add_argument("--user", help="AUTH user (with --starttls).")
    parser.add_argument(
        "--secret",
        default=os.environ.get("LOADGEN_SECRET"),
        help="AUTH secret (with --starttls; default $LOADGEN_SECRET).",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="Per SMTP command, seconds.")
    parser.add_argument(
        "--time-limit", type=float, default=300.0, help="Stop submitting after this many seconds."
    )
    parser.add_argument("--run-id", default="bench")
    parser.add_argument("--marketing", action="store_true", help="Mark every message as marketing.")
    parser.add_argument(
        "--size", type=int, default=MESSAGE_SIZE, help="Bytes per message (about; default 5 KB)."
    )
    parser.add_argument(
        "--mix",
        action="store_true",
        help="The realistic mix (bench/mail_mix.py): 5 KB, 50 KB and 2 MB by 70/25/5, "
        "a third with PHI; --size does not apply.",
    )
    parser.add_argument(
        "--mix-size",
        type=int,
        choices=SIZE_CLASSES_KB,
        help="With --mix, only the mix's messages of this size class, in KB: where a "
        "system gains or loses on the mix.",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="Messages per second for the whole run, spread over the sessions "
        "(default 0: each session sends its next message as soon as the last is answered).",
    )
    args = parser.parse_args(argv)
    if args.rate < 0:
        parser.error("--rate must be 0 or more")
    if not args.host.startswith("127."):
        parser.error("the load generator only targets loopback (127.0.0.0/8)")
    if not 1 <= args.sessions <= 1000 or not 1 <= args.messages <= 1_000_000:
        parser.error("--sessions must be 1..1000 and --messages 1..1000000")
    if not 1024 <= args.size <= 100 * 1024 * 1024:
        parser.error("--size must be 1024..104857600 bytes")
    if args.mix_size is not None and not args.mix:
        parser.error("--mix-size needs --mix")
    opts = Options(
        host=args.host,
        ports=tuple(args.port),
        sessions=args.sessions,
        messages=args.messages,
        starttls=args.starttls,
        user=args.user,
        secret=args.secret,
        timeout=args.timeout,
        time_limit=args.time_limit,
        run_id=args.run_id,
        marketing=args.marketing,
        size=args.size,
        mix=args.mix,
        mix_size=None if args.mix_size is None else args.mix_size * 1024,
        rate=args.rate,
    )
    send_data_by_bytes_methods()
    result = run_loop(asyncio.wait_for(run(opts), opts.time_limit + 2 * opts.timeout))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
