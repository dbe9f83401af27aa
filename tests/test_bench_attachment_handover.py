"""bench/attachment_handover.py runs, and hands each PDF over as it says: the small one
through the pipe only, the large ones through the pipe and in a memfd."""

from __future__ import annotations

from harness import bench_json

from gateway.inspect.extract import shared


def test_each_size_is_handed_over_both_ways_and_read_in_process() -> None:
    results = bench_json("attachment_handover.py", "--jobs", "40")
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
