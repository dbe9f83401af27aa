"""A large content sealed and written to its file, both ways intake does it.

    .venv/bin/python bench/seal_large.py                  # 2 and 10 MB, about 20 seconds
    .venv/bin/python bench/seal_large.py --sizes 1,50 --rounds 10

On SQLite a message past `limits.large_message_size` keeps its ciphertext in a
file of its own (gateway/store/contents.py). Intake seals it one of two ways:

- **pieces** (the archive off): `Keyring.seal_to`, the content encrypted 1 MiB
  at a time, each piece written as it comes;
- **whole** (the archive on, whose row needs the whole ciphertext):
  `Keyring.seal` of the Received line joined to the content, then the file
  written from that ciphertext.

For each size it prints the CPU time (this process, all threads) and the wall
time per message of sealing, writing and flushing the file (its directory
too), the median of `--rounds` after one unmeasured run, alternating the two
ways. glibc's allocator is set as the server sets it (gateway.malloc).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from gateway import malloc
from gateway.store.contents import ContentFiles
from gateway.store.keyring import Keyring

RECEIVED = b"Received: from ehr.bench.example.org by phigate.bench.example.org\r\n"
MB = 1024 * 1024


def timed(work: Callable[[], object]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="2,10", help="content sizes in MB, comma-separated")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if not all(1 <= size <= 100 for size in sizes) or not 1 <= args.rounds <= 1000:
        parser.error("--sizes must be 1..100 MB each, --rounds 1..1000")
    malloc.return_large_blocks()
    with tempfile.TemporaryDirectory(prefix="phigate-seal-large-") as directory:
        keyring = Keyring.create(Path(directory) / "keys")
        contents = ContentFiles(Path(directory) / "contents")
        names = iter(range(1_000_000))

        def pieces(content: bytes) -> None:
            queue_id = f"Q{next(names)}"
            write = partial(contents.write, queue_id)
            keyring.seal_to((RECEIVED, content), queue_id.encode(), write)
            contents.remove([queue_id])

        def whole(content: bytes) -> None:
            queue_id = f"Q{next(names)}"
            sealed = keyring.seal(RECEIVED + content, queue_id.encode())
            contents.write(queue_id, (sealed.ciphertext,))
            contents.remove([queue_id])

        ways = {"pieces": pieces, "whole": whole}
        print(f"{'size':>6}  {'way':8}  {'CPU ms':>7}  {'wall ms':>7}")
        for size in sizes:
            content = os.urandom(size * MB)
            figures: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
            for way in ways.values():
                way(content)  # unmeasured
            for _ in range(args.rounds):
                for name, way in ways.items():
                    figures[name].append(timed(partial(way, content)))
            for name, runs in figures.items():
                cpu = statistics.median(c for c, _ in runs) * 1000
                wall = statistics.median(w for _, w in runs) * 1000
                print(f"{size:>4} MB  {name:8}  {cpu:7.2f}  {wall:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
