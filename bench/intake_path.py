"""CPU per message on the intake path alone: parse, inspect, decide, seal, the durable accept.

    .venv/bin/python bench/intake_path.py                 # 2000 messages, one at a time
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python bench/intake_path.py --messages 200 --warm-up 50 --callgrind

The server's intake, built by `gateway.app.build` as `phigate serve` builds it,
takes 5 KB messages without PHI one after another, as the listener hands them
over after DATA (no SMTP, no TLS): parsing, PHI inspection, the policy, the
Received header, sealing, and the accept's durable commit (message, job leased
to a free delivery worker, audit events) through the group-committing writer.
Nothing is delivered. It prints this process's CPU time (all threads) per
message; the message itself is made in the loop too (about 10 us). Under
callgrind only the counted messages are instrumented and their count goes to
`/tmp/cg.out.1`, whose `totals:` line gives the instructions they took: the
same code gives the same count within 0.1%, whatever else the machine does.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from delivery_path import (  # bench/ is on sys.path
    CACHE_DIR,
    accept,
    delivery_settings,
    instrument,
    prepare,
    write_settings,
)

from gateway import app
from gateway.inspect.detect import dbcache

# Delivery is never started: the smarthost's port is not dialled.
_UNUSED_PORT = 9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--warm-up", type=int, default=100)
    parser.add_argument(
        "--callgrind", action="store_true", help="instrument only the counted messages"
    )
    args = parser.parse_args()
    CACHE_DIR.mkdir(exist_ok=True)
    dbcache.use_directory(CACHE_DIR)  # as `phigate serve` does
    uvloop.install()  # as `phigate serve` runs
    workdir = Path(tempfile.mkdtemp(prefix="phigate-intake-path-"))
    try:
        config = write_settings(workdir, delivery_settings(_UNUSED_PORT, 10, None, None))
        settings = prepare(config, dkim=True)
        warm = app.build(settings)
        try:
            asyncio.run(accept(warm, args.warm_up, "warm"))
        finally:
            warm.close()
        parts = app.build(settings)
        try:
            if args.callgrind:
                instrument(True)
            cpu, wall = time.process_time(), time.perf_counter()
            asyncio.run(accept(parts, args.messages, "run"))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if args.callgrind:
                instrument(False)
        finally:
            parts.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"{args.messages} messages: {1000 * cpu / args.messages:.3f} ms CPU per message "
        f"({1000 * wall / args.messages:.2f} ms wall, one at a time)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
