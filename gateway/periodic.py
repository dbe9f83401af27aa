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
) -> None:
    """Call `work(now)` now and then every `interval` seconds until `stop` is set. A
    failed pass is logged as event `failed` with the error's type only (its message
    could quote data) and tried again at the next."""
    while not stop.is_set():
        try:
            await work(time.time())
        except Exception as exc:
            event(log, failed, logging.ERROR, error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
