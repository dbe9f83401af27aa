"""systemd/phigate.service: it verifies, its exposure stays low, and phigate runs within it.

systemd is not PID 1 here, so the confinement that matters at run time is checked
piece by piece with real tools: `systemd-analyze` reads the unit and expands its
system call groups, strace records every call and socket family a serving phigate
makes (TLS, AUTH, a PDF inspected, a delivery, SIGHUP, the SIGTERM drain), and the
kernel's PR_SET_MDWE refuses writable-executable memory as MemoryDenyWriteExecute=
does.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

import harness
import pytest
from documents import pdf_with_text
from harness import Phigate, Sink, audit_since, wait_until
from needed import tool

from gateway.runstate import PID_FILE

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "phigate.service"
# The figure docs/deployment.md gives (6.2 before hardening).
DOCUMENTED_EXPOSURE = 1.4
# The families RestrictAddressFamilies= leaves.
ALLOWED_FAMILIES = {"AF_INET", "AF_INET6", "AF_UNIX"}


def _settings(name: str) -> list[str]:
    """The values of every `name=` line of the unit, in order."""
    return [
        line.split("=", 1)[1].strip()
        for line in UNIT.read_text().splitlines()
        if line.startswith(f"{name}=")
    ]


def _unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at this environment's phigate, which verify needs."""
    phigate = Path(sys.executable).parent / "phigate"
    assert phigate.exists(), f"{phigate} is missing: install phigate into this environment"
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={phigate}", UNIT.read_text(), count=1, flags=re.M)
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    return copy


def test_the_unit_verifies(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(_unit_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "phigate.service" not in result.stderr, result.stderr


def test_exposure_is_at_most_the_documented_figure(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    threshold = round(DOCUMENTED_EXPOSURE * 10)  # --threshold counts tenths
    unit = _unit_copy(tmp_path)
    result = subprocess.run(
        [analyze, "security", "--offline=yes", f"--threshold={threshold}", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for phigate\.service: (\d+\.\d)", result.stdout)
    assert found is not None, result.stdout + result.stderr
    assert float(found.group(1)) <= DOCUMENTED_EXPOSURE, result.stdout
    assert result.returncode == 0, result.stdout  # --threshold agrees
    docs = (UNIT.parent.parent / "docs" / "deployment.md").read_text()
    assert f"{DOCUMENTED_EXPOSURE} OK" in docs


def test_the_unit_keeps_the_service_runnable() -> None:
    """What phigate needs: its data dir writable, its ports bindable, no other privilege."""
    assert _settings("ReadWritePaths") == ["/etc/phigate"]
    assert _settings("Environment") == ["PHIGATE_CONFIG=/etc/phigate/phigate.yaml"]
    assert _settings("CapabilityBoundingSet") == ["CAP_NET_BIND_SERVICE"]
    assert _settings("AmbientCapabilities") == ["CAP_NET_BIND_SERVICE"]
    assert set(" ".join(_settings("RestrictAddressFamilies")).split()) == ALLOWED_FAMILIES
    assert _settings("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert _settings("KillMode") == ["mixed"]


def _group(name: str) -> set[str]:
    """The system calls of a systemd group (`@system-service`), its subgroups expanded."""
    analyze = tool("systemd-analyze")
    listing = subprocess.run(
        [analyze, "syscall-filter", name], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    calls: set[str] = set()
    for line in listing.splitlines()[1:]:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            calls |= _group(entry) if entry.startswith("@") else {entry}
    return calls


def _allowed_system_calls() -> set[str]:
    """What the unit's SystemCallFilter= lines leave: an allow-list, then `~` removals."""
    allowed: set[str] = set()
    for value in _settings("SystemCallFilter"):
        names: set[str] = set()
        for entry in value.lstrip("~").split():
            names |= _group(entry) if entry.startswith("@") else {entry}
        allowed = allowed - names if value.startswith("~") else allowed | names
    return allowed


def _mdwe_supported() -> bool:
    # PR_GET_MDWE (66) exists from Linux 6.3; older kernels answer EINVAL.
    return bool(ctypes.CDLL(None, use_errno=True).prctl(66, 0, 0, 0, 0) >= 0)


# PR_SET_MDWE (65) with PR_MDWE_REFUSE_EXEC_GAIN (1), kept across fork and exec:
# what MemoryDenyWriteExecute= asks of the kernel.
CONFINED_START = """\
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    sys.exit("PR_SET_MDWE refused")
os.execv(sys.executable, [sys.executable, "-m", "gateway.cli", *sys.argv[1:]])
"""


def _pdf_mail() -> bytes:
    mail = EmailMessage()
    mail["From"] = "ehr@clinic.example.org"
    mail["To"] = "dr@partner.test"
    mail["Subject"] = "report"
    mail.set_content("see attached")
    mail.add_attachment(
        # Past shared.SHARED_FROM: handed to its extractor worker in a memfd.
        pdf_with_text(["Invoice 2291", "Total due: 40 units"] + ["Spare parts, shelf 4."] * 3000),
        maintype="application",
        subtype="pdf",
        filename="report.pdf",
    )
    return mail.as_bytes(policy=SMTP_POLICY)


@pytest.mark.skipif(not _mdwe_supported(), reason="the kernel has no PR_SET_MDWE (Linux < 6.3)")
@pytest.mark.timeout(300)
def test_phigate_serves_within_the_units_confinement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strace = tool("strace")
    start = tmp_path / "confined.py"
    start.write_text(CONFINED_START)
    trace = tmp_path / "strace.txt"
    monkeypatch.setattr(harness, "PHIGATE", [sys.executable, str(start)])
    with Sink() as sink:
        # The smarthost by name: resolved as an MX host would be.
        gw = Phigate(
            tmp_path, delivery={"mode": "smarthost", "smarthost": f"localhost:{sink.port}"}
        )
        secret = gw.add_principal("ehr1", "clinic.example.org")
        tracer = [strace, "-f", "-qq", "-o", str(trace), sys.executable, str(start)]
        monkeypatch.setattr(harness, "PHIGATE", tracer)
        gw.start()
        assert gw.proc is not None
        served = int((Path(gw.settings["data_dir"]) / PID_FILE).read_text())  # strace's child
        try:
            sent = gw.submit(secret, "ehr@clinic.example.org", ["dr@partner.test"], _pdf_mail())
            assert sent == {}
            sink.wait_for(1, timeout=60)
            os.kill(served, signal.SIGHUP)  # ExecReload=
            wait_until(lambda: '"event":"policy_reloaded"' in gw.log_text(), 30)
        finally:
            os.kill(served, signal.SIGTERM)
            code = gw.proc.wait(130)  # TimeoutStopSec=; strace exits with its child
            gw.proc = None
    assert code == 0, gw.log_text()[-2000:]
    assert '"event":"stopped"' in gw.log_text()
    # The PDF was read: an attachment that cannot be is PHI to the default policy.
    decisions = [e["detail"] for e in audit_since(gw, 0) if e["event"] == "policy"]
    assert len(decisions) == 1 and "rule=no-phi-standard-delivery" in decisions[0], decisions

    calls: set[str] = set()
    families: set[str] = set()
    executable: list[str] = []
    for line in trace.read_text(errors="replace").splitlines():
        # systemd 252 enforces MemoryDenyWriteExecute= with seccomp, stricter than
        # PR_SET_MDWE: no mprotect() to PROT_EXEC at all, no writable-executable mmap().
        if re.match(r"\d+\s+(pkey_)?mprotect\(.*PROT_EXEC", line) or re.match(
            r"\d+\s+mmap\(.*(PROT_WRITE\|PROT_EXEC|PROT_EXEC\|PROT_WRITE)", line
        ):
            executable.append(line)
        call = re.match(r"\d+\s+(\w+)\(", line)
        if call is not None:
            calls.add(call.group(1))
        family = re.match(r"\d+\s+socket\((AF_\w+)", line)
        if family is not None:
            families.add(family.group(1))
    assert {"accept4", "connect", "execve", "memfd_create"} <= calls, sorted(calls)
    if os.geteuid() == 0:
        # SQLite, run by root, hands its -wal and -shm files to the database file's
        # owner; as the unit's phigate user it never calls fchown.
        calls.discard("fchown")
    outside = calls - _allowed_system_calls()
    assert outside == set(), f"calls the unit's SystemCallFilter= refuses: {sorted(outside)}"
    assert families <= ALLOWED_FAMILIES, families
    assert executable == [], executable
