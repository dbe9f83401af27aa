"""A PostgreSQL server of its own, to stop and start at will: the machine's shared
server is never touched. Tests take it through databases.private_postgres (which
skips where Debian's server binaries are missing); bench/scale_out.py through
running_postgres."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from harness import free_port

# Debian's server binaries, of whichever version is installed (the newest).
_INSTALLED = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
BIN = Path(
    os.environ.get("PHIGATE_TEST_POSTGRES_BIN")
    or (str(_INSTALLED[-1]) if _INSTALLED else "/usr/lib/postgresql/bin")
)
# What a test's server runs with: nothing it does needs to survive a machine crash.
TEST_SETTINGS: Mapping[str, str] = {"fsync": "off"}


def missing_binaries() -> str | None:
    """Why no private server can be started here, or None."""
    if (BIN / "pg_ctl").exists():
        return None
    return f"no PostgreSQL server binaries in {BIN} (Debian package postgresql)"


class PrivatePostgres:
    """One server in a temporary directory, on a loopback port of its own; as root it
    runs as the `postgres` user (the server refuses to run as root)."""

    def __init__(self, root: Path, settings: Mapping[str, str] = TEST_SETTINGS) -> None:
        self.dir = root / "data"
        self.log = root / "server.log"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.settings = {"listen_addresses": "127.0.0.1", "max_connections": "50", **settings}
        self.running = False
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            owner = pwd.getpwnam("postgres")
            os.chown(root, owner.pw_uid, owner.pw_gid)
        self._run(BIN / "initdb", "-D", str(self.dir), "--auth=trust", "-U", "postgres", "-N")

    def _run(self, *args: str | Path) -> None:
        result = subprocess.run(
            [*self._as, *map(str, args)], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}")

    def _ctl(self, *args: str) -> None:
        self._run(BIN / "pg_ctl", "-D", str(self.dir), *args)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} " + " ".join(
            f"-c {name}={value}" for name, value in self.settings.items()
        )
        self._ctl("-o", options, "-l", str(self.log), "-w", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash as clients see it: connections cut, no goodbye."""
        self._ctl("-m", mode, "-w", "stop")
        self.running = False

    def pid(self) -> int:
        """The postmaster's process ID (its children are the server's other processes)."""
        return int((self.dir / "postmaster.pid").read_text().split()[0])


@contextmanager
def running_postgres(settings: Mapping[str, str] = TEST_SETTINGS) -> Iterator[PrivatePostgres]:
    """A started server, stopped and removed afterwards; RuntimeError where it cannot be."""
    missing = missing_binaries()
    if missing is not None:
        raise RuntimeError(missing)
    root = Path(tempfile.mkdtemp(prefix="phigate-pg-"))
    try:
        server = PrivatePostgres(root, settings)
        server.start()
        try:
            yield server
        finally:
            if server.running:
                server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)
