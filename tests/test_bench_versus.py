"""The head-to-head benchmark's pieces: the Postfix instance it configures
(bench/versus_postfix.py) and how it folds py-spy's stacks into costs
(bench/stack_profile.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.certs import make_certs

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import stack_profile  # noqa: E402 (bench/stack_profile.py)
import versus_postfix  # noqa: E402 (bench/versus_postfix.py)

SITE = "/venv/lib/python3.11/site-packages"
GATEWAY = "/repo/gateway"


def _frame(function: str, file: str) -> str:
    return f"{function} ({file}:1)"


def test_stacks_are_charged_to_the_innermost_named_cost_and_to_their_stage() -> None:
    loop = _frame("run", "/usr/lib/python3.11/asyncio/runners.py")
    commit = ";".join(
        [
            'process 7:"phigate serve"',
            loop,
            _frame("deliver", f"{GATEWAY}/delivery/worker.py"),
            _frame("append", f"{GATEWAY}/audit/trail.py"),
            _frame("commit", f"{SITE}/sqlalchemy/engine/base.py"),
            _frame("do_commit", f"{SITE}/sqlalchemy/engine/default.py"),
        ]
    )
    chain = ";".join(
        [
            loop,
            _frame("handle_DATA", f"{GATEWAY}/smtp/listener.py"),
            _frame("accept", f"{GATEWAY}/intake.py"),
            _frame("chain_hash", f"{GATEWAY}/audit/trail.py"),
            _frame("dumps", "/usr/lib/python3.11/json/__init__.py"),
        ]
    )
    idle_loop = ";".join(
        [loop, _frame("run_forever", "/usr/lib/python3.11/asyncio/base_events.py")]
    )
    lines = [f"{commit} 30\n", f"{chain} 20\n", f"{idle_loop} 5\n", "garbage\n"]

    profile = stack_profile.fold(lines)

    assert profile.samples == {
        ("SQLite statements and commits (C, fsync)", "delivery"): 30,
        ("audit trail", "intake"): 20,
        ("asyncio (Python)", "other"): 5,
    }
    table = stack_profile.format_profile(profile, messages=10, rate=100.0)
    # 30 samples at 100 Hz over 10 messages: 30 ms per message.
    row = next(line for line in table.splitlines() if line.startswith("SQLite"))
    assert row.split()[-5:] == ["0.00", "30.00", "0.00", "30.00", "55%"]


def test_the_event_loop_without_python_frames_below_it_is_named_as_such() -> None:
    uvloop = _frame("run_forever", f"{SITE}/uvloop/__init__.py")
    profile = stack_profile.fold([f"{uvloop} 3\n"])
    assert profile.samples == {(stack_profile.EVENT_LOOP, "other"): 3}


@pytest.mark.skipif(
    versus_postfix.missing_programs() or os.geteuid() != 0,
    reason="needs root and the Debian packages " + versus_postfix.PACKAGES,
)
def test_the_postfix_baseline_is_a_valid_closed_relay_with_its_milter(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    workdir = tmp_path / "postfix"
    workdir.mkdir()
    tmp_path.chmod(0o755)
    postfix = versus_postfix.Postfix(workdir, 2525, certs["good"], certs["good_key"], "secret")

    postfix.prepare()  # ends with `postfix check`, which fails on a broken configuration

    def setting(name: str) -> str:
        done = subprocess.run(
            ["postconf", "-c", str(postfix.config_dir), "-h", name],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    assert setting("smtpd_relay_restrictions") == "permit_sasl_authenticated, reject"
    assert setting("smtpd_milters") == f"unix:{postfix.milter_socket}"
    assert setting("milter_default_action") == "tempfail"
    assert (postfix.queue_dir / "incoming").is_dir()
    key = (postfix.dkim_dir / "bench.private").read_text()
    assert "PRIVATE KEY" in key
