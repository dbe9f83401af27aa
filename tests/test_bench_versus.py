"""The head-to-head benchmark's pieces: the Postfix instance it configures
(bench/versus_postfix.py) and how it folds py-spy's stacks into costs
(bench/stack_profile.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from certs import make_certs

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import stack_profile  # noqa: E402 (bench/stack_profile.py)
import versus_postfix  # noqa: E402 (bench/versus_postfix.py)

SITE = "/venv/lib/python3.11/site-packages"
GATEWAY = "/repo/gateway"


def _frame(function: str, file: str) -> str:
    return f"{function} ({file}:1)"


def test_stacks_are_charged_to_the_innermost_named_cost_and_to_their_stage() -> None:
    loop = _frame("Runner.run", "/usr/lib/python3.11/asyncio/runners.py")
    commit = [
        _frame("Database._writer", f"{GATEWAY}/store/database.py"),
        _frame("Connection.commit", f"{SITE}/sqlalchemy/engine/base.py"),
        _frame("DefaultDialect.do_commit", f"{SITE}/sqlalchemy/engine/default.py"),
    ]
    audit_in_delivery = [
        'process 7:"phigate serve"',
        _frame("Database._writer", f"{GATEWAY}/store/database.py"),
        _frame("record_outcome", f"{GATEWAY}/delivery/worker.py"),
        _frame("append", f"{GATEWAY}/audit/trail.py"),
        _frame("chain_hash", f"{GATEWAY}/audit/trail.py"),
        _frame("dumps", "/usr/lib/python3.11/json/__init__.py"),
    ]
    reading = [
        loop,
        _frame("SMTP._handle_client", f"{SITE}/aiosmtpd/smtp.py"),
        _frame("StreamReader.readuntil", "/usr/lib/python3.11/asyncio/streams.py"),
    ]
    lines = [
        ";".join(commit) + " 30\n",
        ";".join(audit_in_delivery) + " 20\n",
        ";".join(reading) + " 6\n",
        loop + " 4\n",
        "garbage\n",
    ]

    profile = stack_profile.fold(lines)

    assert profile.samples == {
        ("SQLite statements and commits (C, fsync)", "writer"): 30,
        ("audit trail", "delivery"): 20,
        ("asyncio (Python)", "intake"): 6,
        (stack_profile.EVENT_LOOP, "other"): 4,
    }
    # 30 samples at 100 Hz over 10 messages: 30 ms per message, half of all samples.
    table = stack_profile.format_profile(profile, messages=10, rate=100.0)
    row = next(line for line in table.splitlines() if line.startswith("SQLite"))
    assert row.split()[-6:] == ["0.00", "0.00", "30.00", "0.00", "30.00", "50%"]
    # Scaled to 6 ms of CPU per message measured: 60 ms were sampled, a tenth ran.
    scaled = stack_profile.format_profile(profile, messages=10, rate=100.0, cpu_ms=6.0)
    row = next(line for line in scaled.splitlines() if line.startswith("SQLite"))
    assert row.split()[-6:] == ["0.00", "0.00", "3.00", "0.00", "3.00", "50%"]


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
