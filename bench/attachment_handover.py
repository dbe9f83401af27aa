"""CPU per attachment handed to an extractor worker: through the pipe or in a memfd.

    .venv/bin/python bench/attachment_handover.py            # about 20 seconds
    .venv/bin/python bench/attachment_handover.py --json     # results as JSON on stdout

gateway.inspect.extract.AttachmentPool with one worker takes the same PDF job
--jobs times, one after another, for PDFs of several sizes (a page of text and
an uncompressed grey scan, as bench/mail_mix.py's 2 MB messages carry), once
with every attachment pickled through pebble's pipe and once with those of
shared.SHARED_FROM octets and more written to a memfd the worker reads
(`shared_memory`). It prints, per job, the wall time of the round trip, this
process's CPU (user and system) and the worker's, and the extraction alone
in this process for scale. See bench/README.md, "Versus Postfix".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mail_mix import scanned_pdf  # bench/

from gateway.config import InspectionConfig
from gateway.inspect.content import Place
from gateway.inspect.extract import AttachmentPool, HeavyJob, extract_heavy
from gateway.inspect.extract.shared import SHARED_FROM

SIZES = (32 * 1024, 256 * 1024, 1536 * 1024)


@dataclass(frozen=True)
class Figures:
    size: int
    handover: str  # "pipe", "memfd" or "in-process"
    wall_ms: float
    server_user_ms: float
    server_system_ms: float
    worker_ms: float


def _descendants_cpu() -> float:
    """CPU seconds of this process's live descendants (the forkserver and its workers)."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry))
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def measure(job: HeavyJob, jobs: int, shared_memory: bool | None) -> Figures:
    """`jobs` round trips through a one-worker pool (in this process when None), after
    five that start and warm the worker."""
    config = InspectionConfig()
    pool = None if shared_memory is None else AttachmentPool(config, 1, shared_memory)

    def once() -> None:
        if pool is None:
            extract_heavy(job, config)
        else:
            pool.submit(job).result()

    try:
        for _ in range(5):
            once()
        before, workers_before = resource.getrusage(resource.RUSAGE_SELF), _descendants_cpu()
        started = time.perf_counter()
        for _ in range(jobs):
            once()
        wall = time.perf_counter() - started
        after, workers_after = resource.getrusage(resource.RUSAGE_SELF), _descendants_cpu()
    finally:
        if pool is not None:
            pool.close()
    in_memfd = shared_memory and len(job.data) >= SHARED_FROM
    return Figures(
        size=len(job.data),
        handover="in-process" if shared_memory is None else "memfd" if in_memfd else "pipe",
        wall_ms=1000 * wall / jobs,
        server_user_ms=1000 * (after.ru_utime - before.ru_utime) / jobs,
        server_system_ms=1000 * (after.ru_stime - before.ru_stime) / jobs,
        worker_ms=1000 * (workers_after - workers_before) / jobs,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="Round trips per measurement.")
    parser.add_argument("--json", action="store_true", help="Results as JSON on stdout.")
    args = parser.parse_args(argv)
    if not 1 <= args.jobs <= 100_000:
        parser.error("--jobs must be 1..100000")
    results = []
    for size in SIZES:
        job = HeavyJob(Place("attachment", 0), "pdf", scanned_pdf(random.Random(size), size, "A"))
        for shared_memory in (False, True, None):
            if shared_memory and len(job.data) < SHARED_FROM:
                continue  # the same as through the pipe
            results.append(measure(job, args.jobs, shared_memory))
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return 0
    print("PDF bytes   hand-over    wall ms  server user  server sys  worker ms  (per job)")
    for r in results:
        print(
            f"{r.size:>9}   {r.handover:<10} {r.wall_ms:8.2f} {r.server_user_ms:12.2f} "
            f"{r.server_system_ms:11.2f} {r.worker_ms:10.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
