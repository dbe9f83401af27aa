"""Turns for large messages: at most so many in a process at once, and the heap
handed back once they have stopped for a while.

A large message's own blocks go back to the system when freed (`malloc`), but
the small ones around it (the email parser's lines, inspection's pieces) stay
scattered in the heap, about 100 MB per process after a burst of 10 MB
messages. Trimming returns them, but walks the whole heap with the event loop
waiting (about 20 ms for 250 MB of fragments): so it runs only when no large
message has been in progress for `QUIET_SECONDS`, never within a stream of them.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from gateway import malloc

QUIET_SECONDS = 2.0


class Turns:
    """A semaphore of `at_once` turns; the heap is trimmed once none has been held for
    QUIET_SECONDS."""

    def __init__(self, at_once: int) -> None:
        self._free = asyncio.Semaphore(at_once)
        self._held = 0
        self._trim: asyncio.TimerHandle | None = None

    def all_taken(self) -> bool:
        return self._free.locked()

    async def acquire(self) -> None:
        await self._free.acquire()
        self._held += 1
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None

    def release(self) -> None:
        self._held -= 1
        self._free.release()
        if self._held == 0 and self._trim is None:
            self._trim = asyncio.get_running_loop().call_later(QUIET_SECONDS, self._trim_now)

    def _trim_now(self) -> None:
        self._trim = None
        malloc.trim()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
