"""What a web connection refused at its client's limit costs phigate.

    PYTHONPATH=$PWD .venv/bin/python bench/web_refusals.py              # about a minute
    PYTHONPATH=$PWD .venv/bin/python bench/web_refusals.py --rounds 5

phigate runs as bench/relay.py runs it, its web app over HTTPS with the
default limits (`web.max_connections_per_ip`: 100 per process, one process).
Each round, one client address (127.0.1.1) first holds its 100 connections
(TLS done, half a request line sent), then, for `--seconds` (6 s: less than
`web.request_timeout`, so the held ones stay), opens one connection after
another from the same address, each a real TLS client handshake driven by
Python's ssl, and records how each ended:

- refused before TLS: closed (EOF or reset) before the server sent a byte;
- refused after TLS: the server answered the ClientHello, the handshake
  ended, and then it closed the connection;
- admitted: still open a second after the handshake (none should be).

It prints, per round and in all, the connections made per second, how
they ended, phigate's CPU (all its threads) during the flood, and that CPU
divided by the refused connections. Exit status 2 if it could not be set up.
See bench/README.md, "Web connections refused before TLS".
"""

from __future__ import annotations

import argparse
import shutil
import socket
import ssl
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from loadgen import insecure_context  # bench/ is on sys.path
from relay import BenchError, Phigate, TreeCpu, log, make_sink

CLIENT = "127.0.1.1"
PER_IP = 100  # web.max_connections_per_ip's default
REQUEST_TIMEOUT = 10.0  # web.request_timeout's default: the held connections last this long
CONNECT_TIMEOUT = 5.0
ADMITTED_AFTER = 1.0  # open this long after the handshake: admitted
BEFORE, AFTER, ADMITTED, FAILED = (
    "refused before TLS",
    "refused after TLS",
    "admitted",
    "handshake failed",
)


def hold(port: int, context: ssl.SSLContext) -> list[ssl.SSLSocket]:
    """The client's PER_IP connections, each with half a request line sent."""
    held = []
    for _ in range(PER_IP):
        raw = socket.create_connection(
            ("127.0.0.1", port), timeout=CONNECT_TIMEOUT, source_address=(CLIENT, 0)
        )
        sock = context.wrap_socket(raw, server_hostname="phigate.bench.example.org")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        held.append(sock)
    return held


def attempt(port: int, context: ssl.SSLContext) -> str:
    """One more connection from the client: how it ended."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="phigate.bench.example.org")
    with socket.create_connection(
        ("127.0.0.1", port), timeout=CONNECT_TIMEOUT, source_address=(CLIENT, 0)
    ) as sock:
        received = 0
        while True:
            try:
                tls.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            except ssl.SSLError:
                return FAILED
            try:
                sock.sendall(outgoing.read())
                data = b"" if done else sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if done:
                break
            if not data:
                return BEFORE if received == 0 else FAILED
            received += len(data)
            incoming.write(data)
        sock.settimeout(ADMITTED_AFTER)
        try:
            while sock.recv(65536):  # a session ticket, then the close
                pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            return ADMITTED
        return AFTER


def flood(port: int, context: ssl.SSLContext, seconds: float) -> tuple[Counter[str], float]:
    outcomes: Counter[str] = Counter()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        outcomes[attempt(port, context)] += 1
    return outcomes, time.monotonic() - started


def round_of(gate: Phigate, context: ssl.SSLContext, seconds: float) -> dict[str, float]:
    held = hold(gate.web_port, context)
    try:
        before = TreeCpu.read(gate.pid).total
        outcomes, elapsed = flood(gate.web_port, context, seconds)
        cpu = TreeCpu.read(gate.pid).total - before
    finally:
        for sock in held:
            sock.close()
    refused = outcomes[BEFORE] + outcomes[AFTER]
    return {
        "connections": float(sum(outcomes.values())),
        "per_second": sum(outcomes.values()) / elapsed,
        BEFORE: float(outcomes[BEFORE]),
        AFTER: float(outcomes[AFTER]),
        ADMITTED: float(outcomes[ADMITTED]),
        FAILED: float(outcomes[FAILED]),
        "cpu_percent": 100.0 * cpu / elapsed,
        "cpu_ms_per_refusal": 1000.0 * cpu / refused if refused else 0.0,
        "cpu_seconds": cpu,
        "refused": float(refused),
    }


def line(label: str, r: dict[str, float]) -> str:
    return (
        f"{label}: {r['connections']:.0f} connections ({r['per_second']:.0f}/s); "
        f"{BEFORE} {r[BEFORE]:.0f}, {AFTER} {r[AFTER]:.0f}, {ADMITTED} {r[ADMITTED]:.0f}, "
        f"{FAILED} {r[FAILED]:.0f}; phigate CPU {r['cpu_percent']:.1f}% of a core, "
        f"{r['cpu_ms_per_refusal']:.3f} ms per refused connection"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="Floods, one after another (3).")
    parser.add_argument("--seconds", type=float, default=6.0, help="Length of a flood (6 s).")
    parser.add_argument("--sink", choices=("auto", "smtp-sink", "python"), default="auto")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20 or not 1.0 <= args.seconds <= REQUEST_TIMEOUT - 2:
        parser.error(f"--rounds must be 1..20 and --seconds 1..{REQUEST_TIMEOUT - 2:g}")
    workdir = Path(tempfile.mkdtemp(prefix="phigate-web-refusals-"))
    sink = gate = None
    try:
        sink = make_sink(args.sink, workdir)
        sink.start()
        gate = Phigate(workdir, sink.port, "info", None, 1, web_tls=True, limits={})
        gate.prepare()
        gate.start()
        log(f"phigate pid {gate.pid}: web app https://127.0.0.1:{gate.web_port}")
        context = insecure_context()
        rounds = []
        for number in range(1, args.rounds + 1):
            rounds.append(round_of(gate, context, args.seconds))
            print(line(f"round {number}", rounds[-1]), flush=True)
            time.sleep(REQUEST_TIMEOUT)  # every held and refused connection gone
        total = {key: sum(r[key] for r in rounds) for key in rounds[0]}
        total["per_second"] = sum(r["per_second"] for r in rounds) / len(rounds)
        total["cpu_percent"] = sum(r["cpu_percent"] for r in rounds) / len(rounds)
        refused = total["refused"]
        total["cpu_ms_per_refusal"] = 1000.0 * total["cpu_seconds"] / refused if refused else 0.0
        print(line("all rounds", total))
        return 0
    except (BenchError, OSError) as exc:
        print(f"web_refusals: {exc}", file=sys.stderr)
        return 2
    finally:
        if gate is not None:
            gate.stop()
        if sink is not None:
            sink.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
