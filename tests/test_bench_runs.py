"""The benchmarks of one stage each still run on small inputs and print the figure their
sections of bench/README.md quote; a script that fails its own checks (store_path.py:
every job delivered, every message shredded) exits non-zero."""

from __future__ import annotations

import subprocess
import sys

import pytest
from harness import BENCH

RUNS = [
    (["store_path.py", "--messages", "100", "--warm-up", "10"], "ms CPU per message"),
    (["intake_path.py", "--messages", "50"], "ms CPU per message"),
    (["seal_large.py", "--rounds", "1"], "10 MB  pieces"),
    (
        ["audit_search.py", "--events", "1000", "--pending", "100", "--runs", "1"],
        "audit show (timeline)",
    ),
    (["detect_backends.py", "--runs", "1"], "hyperscan"),
    (["audit_forward_cost.py", "--events", "1000"], "per relayed message"),
    (["mtasts.py"], "cached lookup"),
]


@pytest.mark.parametrize(("command", "figure"), RUNS, ids=[c[0] for c, _ in RUNS])
def test_the_benchmark_runs_and_prints_its_figure(command: list[str], figure: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / command[0]), *command[1:]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert figure in done.stdout
