"""A PostgreSQL server of a test's own, to stop and start at will: the machine's
shared server is never touched. Skips where Debian's server binaries are missing."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import free_port
from needed import unavailable

# Debian's server binaries, of whichever version is installed (the newest).
_INSTALLED = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
BIN = Path(
    os.environ.get("PHIGATE_TEST_POSTGRES_BIN")
    or (str(_INSTALLED[-1]) if _INSTALLED else "/usr/lib/postgresql/bin")
)


class PrivatePostgres:
    """One server in a temporary directory, on a loopback port of its own; as root it
    runs as the `postgres` user (the server refuses to run as root)."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "data"
        self.log = root / "server.log"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
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
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=50"
        )
        self._ctl("-o", options, "-l", str(self.log), "-w", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash as clients see it: connections cut, no goodbye."""
        self._ctl("-m", mode, "-w", "stop")
        self.running = False


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started server, stopped and removed afterwards."""
    if not (BIN / "pg_ctl").exists():
        unavailable(f"no PostgreSQL server binaries in {BIN}")
    root = Path(tempfile.mkdtemp(prefix="phigate-pg-"))
    try:
        server = PrivatePostgres(root)
        server.start()
        try:
            yield server
        finally:
            if server.running:
                server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)
