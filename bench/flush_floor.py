"""The disk's floor under a one-session accept: one durable flush, after an idle gap.

    .venv/bin/python bench/flush_floor.py                   # in a temporary directory
    .venv/bin/python bench/flush_floor.py --dir /var/lib/phigate   # on the data's disk
    .venv/bin/python bench/flush_floor.py --json            # results as JSON on stdout

Every accept waits for one flush of the SQLite WAL before its 250 (durable before
250), as Postfix waits for one of its queue file. This writes `--kib` octets over
blocks a file already has, as the WAL's commits do, flushes them with fdatasync,
and does so after the same idle gap a hundred times over: no gap (back to back, as
under load), 0.5, 1.5 and 3 ms (what one session leaves between two messages'
flushes). It prints the median and 90th percentile of the flush per gap. The
gaps take turns block by block, three blocks each, so drift in the machine's
speed falls on all of them alike; the first flushes of a block, while the
machine adapts to the new rhythm, are not counted.

What it shows on a virtual machine: a flush in a rhythm of idle gaps can cost ten
times one in a run of back-to-back flushes, whatever its size, because the
virtual CPU that takes the disk's interrupts halts while the flush is under way
and is woken for its end (a hypervisor that polls a halted CPU only while its
wake-ups come close together would do this). Every relay that flushes per
message pays that at one session, phigate and Postfix alike; at higher
concurrency the flushes come back to back and it goes. See bench/README.md,
"Versus Postfix".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from relay import percentile  # bench/ is on sys.path

GAPS_MS = (0.0, 0.5, 1.5, 3.0)
BLOCKS = 3  # per gap
SETTLING = 20  # flushes at the start of each block, not counted
FILE_SIZE = 64 * 1024 * 1024  # written once; the flushes overwrite it from the start


@dataclass(frozen=True)
class Flushes:
    gap_ms: float
    flushes: int
    p50_ms: float
    p90_ms: float


def measure(folder: Path, kib: int, per_block: int) -> list[Flushes]:
    path = folder / "flush-floor.bin"
    piece = b"x" * (kib * 1024)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(FILE_SIZE // (1024 * 1024)):
            os.write(fd, b"\0" * (1024 * 1024))
        os.fsync(fd)
        times: dict[float, list[float]] = {gap: [] for gap in GAPS_MS}
        offset = 0
        for block in range(BLOCKS):
            # A-B-C-D, D-C-B-A, A-B-C-D: a linear drift falls on every gap alike.
            for gap in GAPS_MS if block % 2 == 0 else GAPS_MS[::-1]:
                for flush in range(SETTLING + per_block):
                    if gap:
                        time.sleep(gap / 1000)
                    if offset + len(piece) > FILE_SIZE:
                        offset = 0
                    os.pwrite(fd, piece, offset)
                    offset += len(piece)
                    started = time.perf_counter()
                    os.fdatasync(fd)
                    if flush >= SETTLING:
                        times[gap].append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return [
        Flushes(gap, len(ms), statistics.median(ms), percentile(ms, 90))
        for gap, ms in times.items()
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"Where to write the {FILE_SIZE >> 20} MiB test file, removed when done (default: "
        "a temporary directory). Point it at phigate's data directory to measure that disk.",
    )
    parser.add_argument(
        "--kib", type=int, default=64, help="KiB written before each flush (default 64)."
    )
    parser.add_argument(
        "--flushes",
        type=int,
        default=100,
        help=f"Flushes counted per block (default 100; {BLOCKS} blocks per gap).",
    )
    parser.add_argument("--json", action="store_true", help="Results as JSON on stdout.")
    args = parser.parse_args(argv)
    if not 1 <= args.kib <= 4096:
        parser.error("--kib must be 1..4096")
    if not 10 <= args.flushes <= 100_000:
        parser.error("--flushes must be 10..100000")
    if args.dir is not None and not args.dir.is_dir():
        parser.error(f"--dir {args.dir}: no such directory")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dir is not None:
        results = measure(args.dir, args.kib, args.flushes)
    else:
        with tempfile.TemporaryDirectory(prefix="phigate-flush-") as tmp:
            results = measure(Path(tmp), args.kib, args.flushes)
    if args.json:
        print(json.dumps([asdict(each) for each in results], indent=2))
        return 0
    where = args.dir if args.dir is not None else "a temporary directory"
    print(f"fdatasync of {args.kib} KiB overwritten in {where}, after each idle gap")
    print("gap ms   flushes   p50 ms   p90 ms")
    for each in results:
        print(f"{each.gap_ms:6.1f} {each.flushes:9} {each.p50_ms:8.3f} {each.p90_ms:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
