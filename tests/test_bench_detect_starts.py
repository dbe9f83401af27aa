"""bench/detect_starts.py runs, and both ways of finding starts find the same matches
(the bench checks that itself), label matches among them."""

from __future__ import annotations

from harness import bench_json


def test_both_ways_on_both_texts() -> None:
    results = bench_json("detect_starts.py", "--rounds", "3")
    assert {(r["text"], r["starts"]) for r in results} == {
        (text, way) for text in ("administrative", "patients") for way in ("tracked", "looked back")
    }
    assert all(r["label_matches"] > 0 and r["ms"] > 0 for r in results)
