"""Turns for large messages: at most so many in a process at once, and the heap
handed back once the last of them is done.

A large message's own blocks go back to the system when freed (`malloc`), but
the small ones around it (the email parser's lines, inspection's pieces) stay
scattered in the heap, about 100 MB per process after a burst of 10 MB
messages; trimming when no large message is left in progress returns them.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from gateway import malloc


class Turns:
    """A semaphore of `at_once` turns that trims the heap when the last one is released."""

    def __init__(self, at_once: int) -> None:
        self._free = asyncio.Semaphore(at_once)
        self._held = 0

    def all_taken(self) -> bool:
        return self._free.locked()

    async def acquire(self) -> None:
        await self._free.acquire()
        self._held += 1

    def release(self) -> None:
        self._held -= 1
        self._free.release()
        if self._held == 0:
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
