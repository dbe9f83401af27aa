"""What archiving costs: `bench/relay.py` with the archive off and on, interleaved.

    .venv/bin/python bench/archive_write.py              # 3 rounds, about 3 minutes
    .venv/bin/python bench/archive_write.py --rounds 5 --concurrent

Each round runs `bench/relay.py --sessions 10 --listeners plain --json` once
without and once with `--archive` (storage in the database; see
bench/overhead.py for how the rounds go), then prints the medians of
accepted/s, delivered/s and phigate's CPU per message and the archive's
overhead on each (target: at most 10 %). It also times, without any mail, what
archiving adds to sealing one relayed 5 KB message: the second wrap of the data
key and the SHA-256 of the stored bytes. See bench/README.md.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from overhead import compare, parser

from gateway.store.keyring import Keyring

MICRO_MESSAGES = 20_000
MESSAGE_BYTES = 5 * 1024


def sealing_us() -> tuple[float, float]:
    """Microseconds to seal one message for the queue alone, and for queue and archive."""
    content = bytes(MESSAGE_BYTES)
    with tempfile.TemporaryDirectory() as directory:
        queue = Keyring.create(Path(directory) / "queue")
        archive = Keyring.create(Path(directory) / "archive")
        started = time.perf_counter()
        for _ in range(MICRO_MESSAGES):
            queue.seal(content, b"QUEUEID")
        alone = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(MICRO_MESSAGES):
            queue.seal_shared(content, b"QUEUEID", archive)
            hashlib.sha256(content).hexdigest()
        both = time.perf_counter() - started
    return alone / MICRO_MESSAGES * 1e6, both / MICRO_MESSAGES * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(__doc__.split("\n")[0]).parse_args(argv)
    runs = compare("--archive", args.rounds, args.concurrent, args.out)
    alone, both = sealing_us()
    cpu = statistics.median(run["phigate_cpu_ms_per_message"] for run in runs[False])
    print(
        f"\nSealing one 5 KB message (no mail): {alone:.1f} µs for the queue alone, "
        f"{both:.1f} µs with the archive's wrap and SHA-256 (+{both - alone:.1f} µs, "
        f"{(both - alone) / (cpu * 1000) * 100:.1f} % of phigate's CPU per message "
        "with the archive off)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
