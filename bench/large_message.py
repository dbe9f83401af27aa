"""The per-byte work of one message, stage by stage, in this process (no SMTP, no store).

    .venv/bin/python bench/large_message.py           # about 20 seconds
    .venv/bin/python bench/large_message.py --json    # results as JSON on stdout

For each shape of the realistic mix (bench/mail_mix.py: 5 KB text, 50 KB text
with a base64 text attachment, 2 MB text with a base64 PDF; with and without
PHI), the time per message of each stage of phigate's path that reads every
byte:

- parse: gateway.mail.message.parse (intake);
- extract: gateway.inspect.extract.walk, the in-process half of inspection
  (base64 decoding, text decoding); the PDF goes to a worker and is not timed;
- detect: gateway.inspect.detect.detect on what extract found;
- seal: the Received: line added and the content encrypted at rest
  (gateway.store.keyring.Keyring.seal), then opened again for delivery;
- dkim body: the relaxed body canonicalisation and its SHA-256
  (gateway.dkim.sign.relaxed_body_hash), the part of signing that grows
  with the message;
- checks: gateway.mail.content.content_problem at DATA (bare CR or LF, NUL,
  8-bit header fields); its line-end search is asked again before signing;
- dots: whether a line begins with "." (gateway.mail.line_ends.has_dot_line),
  asked when DATA's dot-stuffing is undone and again when delivery stuffs it.

glibc's allocator is set as the server sets it (gateway.malloc), so that
copies of large messages cost what they cost there. Each stage runs --rounds
times after one unmeasured run; the median is printed, in ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadgen import message_head
from mail_mix import LARGE, MEDIUM, SMALL, make_mixed_message

from gateway import malloc
from gateway.config import InspectionConfig
from gateway.dkim.sign import relaxed_body_hash
from gateway.inspect.detect import detect, prepare
from gateway.inspect.extract import walk
from gateway.mail.content import content_problem
from gateway.mail.headers import split_message
from gateway.mail.line_ends import has_dot_line
from gateway.mail.message import parse
from gateway.store.keyring import Keyring

RECEIVED = b"Received: from client by relay (phigate) with ESMTPSA id q;\r\n\tThu, 1 Jan 2026\r\n"
# Indexes of the mix with each size, without and with PHI (mail_mix.size_class / carries_phi).
SHAPES = {"5 KB": (1, 0), "50 KB": (14, 15), "2 MB": (19, 39)}


def median_ms(work: Callable[[], object], rounds: int) -> float:
    work()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def stages(
    content: bytes, keyring: Keyring, config: InspectionConfig, rounds: int
) -> dict[str, float]:
    message = parse(content).message
    extraction, _ = walk(message, config)
    body = split_message(content)[1]
    sealed = keyring.seal(RECEIVED + content, b"q")
    return {
        "parse": median_ms(lambda: parse(content), rounds),
        "extract": median_ms(lambda: walk(message, config), rounds),
        "detect": median_ms(lambda: detect(extraction, config), rounds),
        "seal": median_ms(lambda: keyring.seal(RECEIVED + content, b"q"), rounds),
        "open": median_ms(lambda: keyring.open(sealed, b"q"), rounds),
        "dkim body": median_ms(lambda: relaxed_body_hash(body), rounds),
        "checks": median_ms(lambda: content_problem(content), rounds),
        "dots": median_ms(lambda: has_dot_line(content), rounds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="Timed runs per stage.")
    parser.add_argument("--json", action="store_true", help="Results as JSON on stdout.")
    opts = parser.parse_args(argv)
    malloc.return_large_blocks()
    config = InspectionConfig()
    prepare(config)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        keyring = Keyring.create(Path(directory) / "keys")
        for shape, indexes in SHAPES.items():
            for index in indexes:
                mixed = make_mixed_message(message_head("stages", index), index)
                assert mixed.size == {"5 KB": SMALL, "50 KB": MEDIUM, "2 MB": LARGE}[shape]
                name = f"{shape}, {'PHI' if mixed.phi else 'no PHI'}"
                timed = stages(mixed.content, keyring, config, opts.rounds)
                results[name] = {"bytes": len(mixed.content), "ms": timed}
    if opts.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 0
    names = list(next(iter(results.values()))["ms"])
    print(f"{'message':18} {'bytes':>9} " + " ".join(f"{n:>9}" for n in names))
    for name, result in results.items():
        cells = " ".join(f"{result['ms'][n]:9.3f}" for n in names)
        print(f"{name:18} {result['bytes']:9d} {cells}")
    print("ms per message, median of", opts.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
