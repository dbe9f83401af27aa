"""bench/large_message.py runs, and times every stage of every shape of the mix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "large_message.py"


def test_every_stage_of_every_shape_is_timed() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--rounds", "1", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    results = json.loads(out)
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
