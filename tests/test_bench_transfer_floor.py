"""bench/transfer_floor.py runs: every size class of the mix goes over STARTTLS to the
sink, and the larger the message, the longer its transfer."""

from __future__ import annotations

from harness import bench_json


def test_each_size_class_is_sent_and_timed() -> None:
    floors = bench_json("transfer_floor.py", "--messages", "20")
    assert [(f["size_kb"], f["messages"]) for f in floors] == [(5, 20), (50, 20), (2048, 5)]
    assert all(0 < f["p50_ms"] <= f["p99_ms"] and f["per_second"] > 0 for f in floors)
    assert floors[2]["p50_ms"] > floors[0]["p50_ms"]
