"""bench/attachment_handover.py runs, and hands the large PDFs over in memfds: their
worker reads them with less of the server's CPU than the pipe takes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.inspect.extract import shared

BENCH = Path(__file__).resolve().parent.parent / "bench" / "attachment_handover.py"


@pytest.mark.skipif(not shared.available(), reason="memfd and /proc are Linux's")
def test_each_size_is_handed_over_both_ways_and_read_in_process() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--jobs", "40", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    results = json.loads(out)
    ways = {(r["size"] >= shared.SHARED_FROM, r["handover"]) for r in results}
    assert ways == {
        (False, "pipe"),
        (False, "in-process"),
        (True, "pipe"),
        (True, "memfd"),
        (True, "in-process"),
    }
    assert all(result["wall_ms"] > 0 for result in results)
    # The worker's CPU is seen: for the largest PDF, clock ticks' worth over 40 jobs.
    largest = max(result["size"] for result in results)
    handed = [r for r in results if r["size"] == largest and r["handover"] != "in-process"]
    assert len(handed) == 2 and all(r["worker_ms"] > 0 for r in handed)
