"""Where a match starts: Hyperscan's start tracking against looking back from its end.

    .venv/bin/python bench/detect_starts.py           # about 30 seconds
    .venv/bin/python bench/detect_starts.py --json    # results as JSON on stdout

A pattern's `start_by` (gateway/inspect/detect/patterns.py) says how the start
of each match is found: "som", Hyperscan tracks it during the scan; "lookback",
the scan reports ends only and a regular expression searches back from each
one. For the ID label patterns ("MRN: 123", "Device lot 4711"), the engine
(gateway.inspect.detect.matcher, as detection builds it, starts included) scans
the text of the mix's 50 KB messages (bench/mail_mix.py) and the same length of
its patients' paragraphs, both ways: ms per scan, the median of --rounds, and
the label matches that a look back each costs.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from typing import Any

from delivery_path import CACHE_DIR
from mail_mix import filler_text, phi_paragraph

from gateway.config import InspectionConfig
from gateway.inspect.detect import dbcache, patterns
from gateway.inspect.detect.matcher import Engine, Pattern, build_engine
from gateway.inspect.detect.scan import name_data

TEXT_CHARS = 45_000  # the text attachment of a 50 KB message of the mix
LABEL = "label:"


def texts() -> dict[str, bytes]:
    rng = random.Random(14)
    clinical = ""
    while len(clinical) < TEXT_CHARS:
        clinical += phi_paragraph(len(clinical)) + filler_text(rng, 600)
    return {
        "administrative": filler_text(rng, TEXT_CHARS).encode(),
        "patients": clinical[:TEXT_CHARS].encode(),
    }


def engines() -> tuple[dict[str, Engine], frozenset[int]]:
    """The detection engine as shipped and with its label patterns looked back."""
    data = name_data()
    defs = patterns.build(InspectionConfig(), data.given, data.given_us)
    labels = frozenset(n for n, d in enumerate(defs) if d.kind.startswith(LABEL))
    shipped = [Pattern(d.regex, d.start_by, d.length, d.words) for d in defs]
    looked_back = [
        Pattern(p.regex, "lookback", 64) if n in labels else p for n, p in enumerate(shipped)
    ]
    return {"tracked": build_engine(shipped), "looked back": build_engine(looked_back)}, labels


def median_ms(engine: Engine, text: bytes, rounds: int) -> float:
    engine.scan(text)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        engine.scan(text)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="Timed scans per case.")
    parser.add_argument("--json", action="store_true", help="Results as JSON on stdout.")
    opts = parser.parse_args(argv)
    CACHE_DIR.mkdir(exist_ok=True)
    dbcache.use_directory(CACHE_DIR)  # as `phigate serve` does
    built, labels = engines()
    results: list[dict[str, Any]] = []
    for name, text in texts().items():
        found = built["tracked"].scan(text)
        assert found == built["looked back"].scan(text), "both ways must find the same"
        matches = sum(len(found.get(n, ())) for n in labels)
        # Alternated, so that a drift of the machine's speed falls on both.
        timed: dict[str, list[float]] = {way: [] for way in built}
        for _ in range(3):
            for way, engine in built.items():
                timed[way].append(median_ms(engine, text, max(1, opts.rounds // 3)))
        for way in built:
            ms = statistics.median(timed[way])
            results.append({"text": name, "starts": way, "label_matches": matches, "ms": ms})
    if opts.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'text':16} {'starts':12} {'label matches':>13} {'ms per scan':>11}")
    for r in results:
        print(f"{r['text']:16} {r['starts']:12} {r['label_matches']:13d} {r['ms']:11.3f}")
    print(f"{TEXT_CHARS // 1000} KB of text each; the median of {opts.rounds} scans")
    return 0


if __name__ == "__main__":
    sys.exit(main())
