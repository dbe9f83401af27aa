"""Background work a server process repeats: a pass now, then every so often."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.logs import event


async def every(
    interval: float,
    stop: asyncio.Event,
    work: Callable[[float], Awaitable[object]],
    log: logging.Logger,
    failed: str,
    wake: asyncio.Event | None = None,
) -> None:
    """Call `work(now)` now and then every `interval` seconds until `stop` is set,
    and at once whenever `wake` is set. A failed pass is logged as event `failed`
    with the error's type only (its message could quote data) and tried again at
    the next."""
    while not stop.is_set():
        try:
            await work(time.time())
        except Exception as exc:
            event(log, failed, logging.ERROR, error=type(exc).__name__)
        await _pause(interval, stop, wake)


async def _pause(interval: float, stop: asyncio.Event, wake: asyncio.Event | None) -> None:
    if wake is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        return
    waiting = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiting, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiting:
            task.cancel()
    wake.clear()
