"""bench/flush_floor.py runs: each idle gap gets its flushes, timed, in a directory it is
pointed at, and a directory that is not there is a one-line error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness import BENCH, bench_json


def test_every_gap_is_flushed_and_timed_in_the_given_directory(tmp_path: Path) -> None:
    results = bench_json("flush_floor.py", "--flushes", "10", "--kib", "4", "--dir", str(tmp_path))
    assert [(r["gap_ms"], r["flushes"]) for r in results] == [
        (0.0, 30),
        (0.5, 30),
        (1.5, 30),
        (3.0, 30),
    ]
    assert all(0 < r["p50_ms"] <= r["p90_ms"] for r in results)
    assert list(tmp_path.iterdir()) == []  # its test file is gone


def test_a_missing_directory_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    done = subprocess.run(
        [sys.executable, str(BENCH / "flush_floor.py"), "--dir", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"--dir {missing}: no such directory" in done.stderr
    assert not missing.exists()
