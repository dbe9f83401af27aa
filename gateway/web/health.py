"""/healthz and /readyz: whether this process is alive, and whether it can take mail.

Ready means: a write through the store's writer commits (the same path every
250 waits for), the master key seals and opens, and every listener of this
process is serving. The answer names what is not ready, never a secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.store import queue
from gateway.store.database import Database
from gateway.store.keyring import Keyring

# A scrape or a load balancer asks often: a write that takes longer is "not ready".
WRITE_TIMEOUT = 2.0
_CONTEXT = b"phigate readiness"


class Readiness:
    """What /readyz checks; `serving` is told which listeners to watch once they start."""

    def __init__(
        self, db: Database, keyring: Keyring, write_timeout: float = WRITE_TIMEOUT
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.write_timeout = write_timeout
        self._down: Callable[[], Sequence[str]] = lambda: ("starting",)
        # One probe write at a time: probes asked while it waits share it.
        self._probe: asyncio.Task[None] | None = None

    def serving(self, down: Callable[[], Sequence[str]]) -> None:
        """From now on, `down()` names the listeners that do not serve."""
        self._down = down

    def stopping(self) -> None:
        self._down = lambda: ("stopping",)

    async def problems(self) -> dict[str, str]:
        """What is not ready: {"database": "...", ...}; empty when ready."""
        found: dict[str, str] = {}
        down = self._down()
        if down:
            found["listeners"] = "not serving: " + ", ".join(down)
        try:
            sealed = self.keyring.seal(b"", _CONTEXT)
            self.keyring.open(sealed, _CONTEXT)
        except Exception as exc:
            found["keys"] = f"the master key cannot seal ({type(exc).__name__})"
        problem = await self._write_problem()
        if problem is not None:
            found["database"] = problem
        return found

    async def _write_problem(self) -> str | None:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self.db.write(queue.probe))
            # Read here or below: a probe that fails after its caller gave up is not an error.
            self._probe.add_done_callback(_retrieve)
        try:
            await asyncio.wait_for(asyncio.shield(self._probe), self.write_timeout)
        except TimeoutError:
            return f"no write committed within {self.write_timeout:g} s"
        except Exception as exc:
            return f"a write failed ({type(exc).__name__})"
        return None


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "alive"})


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    readiness: Readiness = request.app.state.readiness
    problems = await readiness.problems()
    if problems:
        return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})
