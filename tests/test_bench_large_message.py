"""bench/large_message.py runs, and times every stage of every shape of the mix."""

from __future__ import annotations

from harness import bench_json


def test_every_stage_of_every_shape_is_timed() -> None:
    results = bench_json("large_message.py", "--rounds", "1")
    assert set(results) == {
        f"{size}, {phi}" for size in ("5 KB", "50 KB", "2 MB") for phi in ("PHI", "no PHI")
    }
    for result in results.values():
        assert set(result["ms"]) == {
            "parse",
            "extract",
            "detect",
            "seal",
            "open",
            "dkim body",
            "checks",
            "dots",
        }
        assert all(ms > 0 for ms in result["ms"].values())
    assert results["2 MB, PHI"]["bytes"] > 2_000_000
