"""What running server processes say about themselves, and how commands reach them.

Each server process reports its state in DATA_DIR/run/KIND-PID.json (the
policy it runs, the master key it seals with), replaced atomically and
removed on a clean exit; readers skip the reports of processes that are
gone. DATA_DIR/phigate.pid names the process that takes signals for all of
them (with `processes: N`, the supervisor, which passes them on).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

RUN_DIR = "run"
PID_FILE = "phigate.pid"


class ServerNotRunning(Exception):
    """No phigate server runs on this data directory (the message says how it was found)."""


def _report_file(data_dir: Path, kind: str, pid: int) -> Path:
    return data_dir / RUN_DIR / f"{kind}-{pid}.json"


def write_report(data_dir: Path, kind: str, report: dict[str, Any]) -> None:
    """Replace this process's report of `kind` (raises OSError if the data dir is not writable)."""
    path = _report_file(data_dir, kind, os.getpid())
    path.parent.mkdir(mode=0o700, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), **report}))
    temporary.replace(path)


def remove_report(data_dir: Path, kind: str) -> None:
    _report_file(data_dir, kind, os.getpid()).unlink(missing_ok=True)


def live_reports(data_dir: Path, kind: str) -> list[dict[str, Any]]:
    """The reports of `kind` of every server process still alive, by pid."""
    reports = []
    for path in sorted((data_dir / RUN_DIR).glob(f"{kind}-*.json")):
        try:
            report = json.loads(path.read_text())
            alive = isinstance(report, dict) and _alive(int(report["pid"]))
        except (OSError, ValueError, TypeError, KeyError):
            continue  # being replaced right now, or not ours
        if alive:
            reports.append(report)
    return reports


def signal_server(data_dir: Path, signum: signal.Signals) -> int:
    """Send `signum` to the running server; returns its pid."""
    pid_file = data_dir / PID_FILE
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        raise ServerNotRunning(
            f"no running phigate found ({pid_file} missing); start `phigate serve`"
        ) from None
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        raise ServerNotRunning(
            f"phigate (pid {pid}) is not running; remove {pid_file} if it is stale"
        ) from None
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
