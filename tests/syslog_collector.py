"""A real syslog collector for tests: Debian's rsyslogd, receiving RFC 5425
(syslog over TLS, octet-counted) on a loopback port and writing each message
as received, one per line."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from harness import free_port, wait_until

RSYSLOGD = "/usr/sbin/rsyslogd"

_CONFIG = """\
global(
  workDirectory="{work}"
  maxMessageSize="64k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="{ca}"
  defaultNetstreamDriverCertFile="{cert}"
  defaultNetstreamDriverKeyFile="{key}"
)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1"
       streamDriver.authMode="{auth_mode}")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="asReceived" type="string" string="%rawmsg%\\n")
action(type="omfile" file="{output}" template="asReceived" flushOnTXEnd="on")
"""


class Rsyslog:
    """rsyslogd with a TLS listener; `client_certs` makes it require a client certificate."""

    def __init__(
        self, directory: Path, ca: Path, cert: Path, key: Path, *, client_certs: bool = False
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "work").mkdir(exist_ok=True)
        self.port = free_port()
        self.output = self.dir / "received.log"
        self.log = self.dir / "rsyslogd.log"
        self.config = self.dir / "rsyslog.conf"
        self.config.write_text(
            _CONFIG.format(
                work=self.dir / "work",
                ca=ca,
                cert=cert,
                key=key,
                auth_mode="x509/certvalid" if client_certs else "anon",
                port=self.port,
                output=self.output,
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Rsyslog:
        check = subprocess.run(
            [RSYSLOGD, "-N1", "-f", str(self.config)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"rsyslogd rejects its test config: {check.stderr}")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", str(self.config), "-i", str(self.dir / "rsyslogd.pid")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._listening, 20, 0.05)
        return self

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"rsyslogd exited: {self.log.read_text(errors='replace')}")
        hex_port = f"{self.port:04X}"
        with open("/proc/net/tcp") as table:
            return any(
                line.split()[1].endswith(f":{hex_port}") and line.split()[3] == "0A"
                for line in table.readlines()[1:]
            )

    def stop(self) -> None:
        """SIGTERM: rsyslogd writes what it received, closes its connections and exits."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
            self.proc = None
        (self.dir / "rsyslogd.pid").unlink(missing_ok=True)

    def __enter__(self) -> Rsyslog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def lines(self) -> list[str]:
        if not self.output.exists():
            return []
        return [line for line in self.output.read_text().splitlines() if line]

    def wait_for(self, predicate_lines: int, timeout: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.lines()
            if len(got) >= predicate_lines:
                return got
            time.sleep(0.1)
        raise TimeoutError(f"rsyslogd received {len(self.lines())} of {predicate_lines} messages")
