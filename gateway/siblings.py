"""The server processes of one node: the SMTP sessions each holds, and a wake-up to each.

Made by the supervisor before it forks, so every process shares one small
block of memory (a session count per process) and one pipe per process.
With few clients, the kernel may give every session to one process while
the others idle: that process then spends its core on taking mail in and
on delivering it, one after the other. Delivering is better done by an
idle sibling, as Postfix's smtpd leaves it to a separate smtp process: the
busy process wakes one with a byte on its pipe, and the sibling claims the
new mail from the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
from collections.abc import Callable

_INT = 4


class Siblings:
    def __init__(self, processes: int) -> None:
        """Before forking: slots for `processes` processes, none of them this one yet."""
        self._counts = memoryview(mmap.mmap(-1, _INT * processes)).cast("i")
        self._pipes = [os.pipe() for _ in range(processes)]
        for read_end, write_end in self._pipes:
            os.set_blocking(read_end, False)
            os.set_blocking(write_end, False)
        self._me = -1

    def become(self, index: int) -> None:
        """In a forked process: slot `index` is this process's (a replacement's
        slot starts again from no sessions)."""
        self._me = index
        self._counts[index] = 0

    def session_opened(self) -> None:
        self._counts[self._me] += 1

    def session_closed(self) -> None:
        self._counts[self._me] -= 1

    def idle_sibling(self) -> int | None:
        """A sibling holding no session while this process holds some, else None."""
        if self._me < 0 or self._counts[self._me] <= 0:
            return None
        for index, sessions in enumerate(self._counts):
            if index != self._me and sessions <= 0:
                return index
        return None

    def wake(self, index: int) -> None:
        # A full pipe holds wake-ups enough already.
        with contextlib.suppress(BlockingIOError):
            os.write(self._pipes[index][1], b"\0")

    def listen(self, woken: Callable[[], None]) -> Callable[[], None]:
        """Call `woken` in this process's running loop when a sibling wakes it;
        returns what stops listening."""
        read_end = self._pipes[self._me][0]
        loop = asyncio.get_running_loop()

        def readable() -> None:
            with contextlib.suppress(BlockingIOError):
                os.read(read_end, 4096)
            woken()

        loop.add_reader(read_end, readable)

        def stop() -> None:
            loop.remove_reader(read_end)

        return stop
