"""The policy a running server decides with, and its reload on SIGHUP.

A reload loads and compiles the whole directory first and swaps the new
policy in with one assignment, so a message is always decided by one
complete policy. If loading fails, the running policy stays.

Each server process reports what it loaded in DATA_DIR/run/policy-PID.json
(version, when, and the error of the last failed reload), which is how
`phigate policy reload` learns the outcome from every process.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway.logs import event
from gateway.policy.engine import CompiledPolicy
from gateway.policy.loader import PolicyError, load_policy, shipped_policy_dir
from gateway.runstate import live_reports, remove_report, write_report

log = logging.getLogger("gateway.policy")

_REPORT = "policy"


def policy_directory(configured: str) -> Path:
    return Path(configured) if configured else shipped_policy_dir()


@dataclass(frozen=True)
class ProcessStatus:
    pid: int
    version: str
    loaded_at: float
    checked_at: float  # when the last load or reload attempt ended
    error: str | None  # the last attempt's problems; None if it succeeded


class LivePolicy:
    def __init__(self, directory: Path, data_dir: Path) -> None:
        self.directory = directory
        self.data_dir = data_dir
        self.current: CompiledPolicy = load_policy(directory)  # PolicyError stops start-up
        self.loaded_at = time.time()

    def started(self) -> None:
        """Call in each server process once it serves: reports the policy it runs."""
        event(log, "policy_loaded", version=self.current.version, rules=len(self.current.rules))
        self._report(None)

    def reload(self) -> bool:
        try:
            policy = load_policy(self.directory)
        except PolicyError as exc:
            # The problems name files, lines and keys of the admin's own policy.
            event(
                log,
                "policy_reload_failed",
                logging.ERROR,
                version=self.current.version,
                problems=[str(p) for p in exc.problems],
            )
            self._report(str(exc))
            return False
        self.current = policy
        self.loaded_at = time.time()
        event(log, "policy_reloaded", version=policy.version, rules=len(policy.rules))
        self._report(None)
        return True

    def stopped(self) -> None:
        remove_report(self.data_dir, _REPORT)

    def _report(self, error: str | None) -> None:
        status = ProcessStatus(
            os.getpid(), self.current.version, self.loaded_at, time.time(), error
        )
        try:
            write_report(self.data_dir, _REPORT, asdict(status))
        except OSError:
            event(log, "policy_status_unwritable", logging.WARNING)


def read_statuses(data_dir: Path) -> list[ProcessStatus]:
    """The status of every live server process (reports of dead ones are skipped)."""
    statuses = []
    for report in live_reports(data_dir, _REPORT):
        try:
            statuses.append(ProcessStatus(**report))
        except TypeError:
            continue  # written by another version
    return statuses
