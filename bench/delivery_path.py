"""CPU per message on the delivery path alone: claim, open, sign, send, record.

    .venv/bin/python bench/delivery_path.py        # 2000 messages at 1, 10 and 50 workers
    .venv/bin/python bench/delivery_path.py --workers 10 --no-dkim
    .venv/bin/python bench/delivery_path.py --mx     # delivery mode mx, DNS on loopback
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python bench/delivery_path.py --messages 300 --warm-up 50 --workers 10 --callgrind

Messages are accepted first, through the server's own intake (inspection,
policy, sealing, the durable accept) in a separate process, so that neither
its CPU nor (under callgrind, which does not follow it) its instructions are
counted. Then the server's delivery service, built by `gateway.app.build` as
`phigate serve` builds it, delivers them with `--workers` worker tasks to a
real SMTP sink on loopback (Postfix's smtp-sink when installed, else
bench/sink.py; both offer PIPELINING): claims, opening the sealed content,
DKIM signing (RSA-2048 unless `--no-dkim`), the SMTP transaction, the outcome
with its audit event and shredding. It prints this process's CPU time (all
threads) per message and the SMTP sessions the sink saw (connection reuse).
`--warm-up` messages are delivered first and not counted. With `--callgrind`
(under `valgrind --tool=callgrind --instr-atstart=no`) only the counted
messages are instrumented, and each run's count is dumped to a file of its
own (`/tmp/cg.out.1`, `.2`, ... in the order of `--workers`); its `totals:`
line gives the instructions they took (valgrind 3.19 writes a wrong
`summary:` in every dump after the first).

With `--mx` the service delivers in mode `mx`, as in production, instead of
to a smarthost: the tests' loopback DNS server (tests/dns_server.py), in a
process of its own so that its CPU is not counted, publishes the recipient
domain's MX record and its host's A record (127.0.0.1, the sink's port as
`delivery.mx_port`), and the DNS queries it answered per counted message are
printed too. `--dns-cache-seconds` sets `delivery.dns_cache_seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvloop
import yaml
from loadgen import RECIPIENT, SENDER, make_message  # bench/ is on sys.path
from relay import DOMAIN, Sink, free_port, make_sink

from gateway import app, datadir
from gateway.config import Settings
from gateway.dkim.keys import KeyStore
from gateway.inspect.detect import dbcache
from gateway.intake import Submission
from gateway.mail.addresses import domain_of
from gateway.settings_loader import load_settings
from gateway.store import queue

SELECTOR = "bench"
# The pattern database compiles once and is kept here between runs.
CACHE_DIR = Path(tempfile.gettempdir()) / "phigate-bench-cache"
RECIPIENT_DOMAIN = domain_of(RECIPIENT)
MX_HOST = f"mx.{RECIPIENT_DOMAIN}"


class DnsServer:
    """The tests' loopback DNS server in a child process, publishing the
    recipient domain's MX and its host's address; it counts the queries."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--dns-server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.nameserver = self._process.stdout.readline().strip()

    def queries(self) -> int:
        """Queries answered so far."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("count\n")
        self._process.stdin.flush()
        return int(self._process.stdout.readline())

    def stop(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()  # end of input stops the server
        self._process.wait(10)


def serve_dns() -> None:
    """The child process of DnsServer: a line on stdin asks for the count."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from dns_server import LoopbackDns

    with LoopbackDns() as dns:
        dns.add(RECIPIENT_DOMAIN, "MX", f"10 {MX_HOST}.")
        dns.add(MX_HOST, "A", "127.0.0.1")
        print(dns.nameserver, flush=True)
        for _ in sys.stdin:
            print(len(dns.queries), flush=True)


@contextlib.contextmanager
def dns_server(wanted: bool) -> Iterator[DnsServer | None]:
    if not wanted:
        yield None
        return
    server = DnsServer()
    try:
        yield server
    finally:
        server.stop()


def delivery_settings(
    sink_port: int, workers: int, dns: DnsServer | None, dns_cache_seconds: float | None
) -> dict[str, Any]:
    """Smarthost delivery to the sink, or with `dns` mode mx to the sink as the MX."""
    settings: dict[str, Any] = {"tls": "none", "workers": workers, "poll_interval": 0.05}
    if dns is None:
        return {"mode": "smarthost", "smarthost": f"127.0.0.1:{sink_port}", **settings}
    settings |= {"mode": "mx", "mx_port": sink_port, "nameservers": [dns.nameserver]}
    if dns_cache_seconds is not None:
        settings["dns_cache_seconds"] = dns_cache_seconds
    return settings


def write_settings(workdir: Path, delivery: dict[str, Any]) -> Path:
    config = workdir / "phigate.yaml"
    settings: dict[str, Any] = {
        "data_dir": str(workdir / "data"),
        "cache_dir": str(CACHE_DIR),
        "hostname": "phigate.bench.example.org",
        "listeners": [
            {
                "name": "plain",
                "address": f"127.0.0.1:{free_port()}",
                "tls": "none",
                "allow_networks_without_auth": True,
            }
        ],
        "relay_networks": [{"name": "bench", "networks": ["127.0.0.0/8"], "domains": [DOMAIN]}],
        "delivery": delivery,
        "log_level": "warning",
        "web": {"enabled": False},
    }
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    return config


def prepare(config: Path, dkim: bool) -> Settings:
    settings = load_settings(config)
    datadir.prepare_data_dir(settings, generate_cert=True)
    datadir.open_database(settings).close()
    if dkim:
        keys = KeyStore(settings.path(settings.dkim.keys_dir))
        keys.generate(DOMAIN, SELECTOR, "rsa-sha256", 2048)
    return settings


async def accept(parts: app.Parts, messages: int, run_id: str) -> None:
    """Queue `messages` through intake, as the listener hands them over."""
    parts.db.start()
    try:
        for index in range(messages):
            reply = await parts.intake.accept(
                Submission(
                    listener="plain",
                    principal=None,
                    client_ip="127.0.0.1",
                    helo="ehr.bench.example.org",
                    tls=False,
                    authenticated=False,
                    sender=SENDER,
                    recipients=(RECIPIENT,),
                    content=make_message(run_id, index),
                )
            )
            if reply.code != 250:
                raise SystemExit(f"bench: intake refused message {index}: {reply}")
    finally:
        parts.db.stop()


def fill(config: Path, messages: int, run_id: str) -> None:
    """Accept `messages` in a separate process (its cost is not the delivery's)."""
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--fill",
            str(config),
            "--messages",
            str(messages),
            "--run-id",
            run_id,
        ],
        check=True,
    )


def delivered(parts: app.Parts) -> int:
    with parts.db.reading() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT count(*) FROM jobs WHERE state = ?", (queue.DELIVERED,)
            ).scalar_one()
        )


async def deliver(parts: app.Parts, sink: Sink, total: int, time_limit: float) -> None:
    """Run the delivery service until the sink has `total` messages, then stop it."""
    parts.db.start()
    parts.delivery.start()
    deadline = time.monotonic() + time_limit
    while sink.count() < total:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: the sink got {sink.count()} of {total} in {time_limit} s")
        await asyncio.sleep(0.1)
    await parts.delivery.stop()
    parts.db.stop()


def instrument(on: bool) -> None:
    """Switch callgrind's instrumentation of this process on or off; when off,
    what was counted goes to a file of its own (`OUT.N`, one per run)."""
    pid = str(os.getpid())
    if not on:
        subprocess.run(["callgrind_control", "--dump", pid], check=True)
    state = "on" if on else "off"
    subprocess.run(["callgrind_control", f"--instr={state}", pid], check=True)


def one_run(
    workdir: Path, sink: Sink, args: argparse.Namespace, workers: int, dns: DnsServer | None
) -> str:
    config = write_settings(
        workdir, delivery_settings(sink.port, workers, dns, args.dns_cache_seconds)
    )
    settings = prepare(config, args.dkim)
    before = sink.count()
    sessions_before = sink.sessions()
    fill(config, args.warm_up, "warm")
    warm = app.build(settings)  # a stopped delivery service does not start again
    try:
        asyncio.run(deliver(warm, sink, before + args.warm_up, args.time_limit))
    finally:
        warm.close()
    fill(config, args.messages, "run")
    sessions_warm = sink.sessions()
    queries = dns.queries() if dns is not None else 0
    parts = app.build(settings)
    try:
        if args.callgrind:
            instrument(True)
        cpu, wall = time.process_time(), time.perf_counter()
        asyncio.run(deliver(parts, sink, before + args.warm_up + args.messages, args.time_limit))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if args.callgrind:
            instrument(False)
        done = delivered(parts)
    finally:
        parts.close()
    if dns is not None:
        queries = dns.queries() - queries
    time.sleep(0.5)  # smtp-sink counts a session when it has ended
    if done != args.warm_up + args.messages:
        raise SystemExit(f"bench: {done} jobs delivered of {args.warm_up + args.messages}")
    dns_note = f"; DNS queries per message: {queries / args.messages:.3f}" if dns else ""
    return (
        f"{workers:>3} workers, {args.messages} messages: "
        f"{1000 * cpu / args.messages:.3f} ms CPU per message "
        f"({1000 * wall / args.messages:.2f} ms wall; SMTP sessions opened: "
        f"{sink.sessions() - sessions_warm} measured, "
        f"{sessions_warm - sessions_before} in the warm-up{dns_note})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--warm-up", type=int, default=100)
    parser.add_argument(
        "--workers", default="1,10,50", help="delivery.workers, comma-separated (a run each)"
    )
    parser.add_argument("--no-dkim", dest="dkim", action="store_false", help="no DKIM key")
    parser.add_argument("--sink", choices=("auto", "smtp-sink", "python"), default="auto")
    parser.add_argument(
        "--callgrind", action="store_true", help="instrument only the counted messages"
    )
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--mx", action="store_true", help="mode mx, DNS on loopback")
    parser.add_argument(
        "--dns-cache-seconds", type=float, help="delivery.dns_cache_seconds (with --mx)"
    )
    parser.add_argument("--dns-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fill", type=Path, help=argparse.SUPPRESS)  # the accepting process
    parser.add_argument("--run-id", default="run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dns_server:
        serve_dns()
        return 0
    if args.fill is not None:
        dbcache.use_directory(CACHE_DIR)
        asyncio.run(accept(app.build(load_settings(args.fill)), args.messages, args.run_id))
        return 0
    CACHE_DIR.mkdir(exist_ok=True)
    dbcache.use_directory(CACHE_DIR)  # as `phigate serve` does
    uvloop.install()  # as `phigate serve` runs
    top = Path(tempfile.mkdtemp(prefix="phigate-delivery-path-"))
    sink = make_sink(args.sink, top)
    try:
        sink.start()
        with dns_server(args.mx) as dns:
            for workers in (int(n) for n in args.workers.split(",")):
                workdir = top / f"w{workers}"
                workdir.mkdir()
                print(one_run(workdir, sink, args, workers, dns), flush=True)
    finally:
        sink.stop()
        shutil.rmtree(top, ignore_errors=True)
    route = "mode mx, DNS on loopback" if args.mx else "smarthost"
    print(f"sink: {sink.kind}; {route}; DKIM {'RSA-2048' if args.dkim else 'off'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
