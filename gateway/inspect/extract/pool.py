"""Worker processes for extract_heavy(): killed at the time budget, capped in memory."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import resource
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from pebble import ProcessPool

from gateway.config import InspectionConfig
from gateway.inspect.content import Extraction, UnscannableReason
from gateway.inspect.extract.heavy import extract_heavy
from gateway.inspect.extract.jobs import HeavyJob, HeavyResult
from gateway.inspect.extract.shared import (
    SHARED_FROM,
    SharedBuffers,
    SharedBytes,
    SharedUnreadable,
    available,
    extract_shared,
)
from gateway.logs import event

_log = logging.getLogger(__name__)


def _start_worker(memory_mb: int) -> None:
    # A decompression bomb or a parser gone wild fails with MemoryError in its worker
    # instead of taking the server's memory.
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = memory_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):
        event(_log, "extractor_memory_limit_failed", logging.WARNING)
    # The parsers log and warn about the files they read (names, fonts, broken
    # objects): a worker says nothing.
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")


def _context() -> multiprocessing.context.BaseContext:
    # Never fork the server: it has threads (and forking them is unsafe). A forkserver
    # with the extractors preloaded starts each worker fast; spawn where there is none.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([extract_heavy.__module__])
        return context
    return multiprocessing.get_context("spawn")


class AttachmentPool:
    """Runs extract_heavy() in worker processes, each job within
    `config.extractor_timeout` seconds and `config.extractor_memory_mb` of address space.
    A worker that overruns is killed and replaced; the pool carries on."""

    def __init__(
        self, config: InspectionConfig, max_workers: int = 2, shared_memory: bool = True
    ) -> None:
        self._config = config
        self._max_workers = max_workers
        self._pool = self._new_pool()
        # Large attachments go to the workers through memfds (shared.py) where they can;
        # without `shared_memory`, every attachment through the pipe.
        self._shared = SharedBuffers(keep=max_workers) if shared_memory and available() else None

    def _new_pool(self) -> ProcessPool:
        return ProcessPool(
            max_workers=self._max_workers,
            initializer=_start_worker,
            initargs=(self._config.extractor_memory_mb,),
            context=_context(),
        )

    def submit(self, job: HeavyJob) -> Future[HeavyResult]:
        """The job's future. A pool that broke (a worker failed to start) is replaced
        once; a job no pool takes fails its future (result_or_unscannable() makes it
        "malformed") rather than raising into inspection."""
        shared = self._shared
        if shared is None or len(job.data) < SHARED_FROM:
            return self._schedule(extract_heavy, job, self._config)
        try:
            where = shared.put(job.data)
        except OSError as exc:  # out of memory for the memfd: the pipe still works
            event(_log, "extractor_shared_memory_failed", logging.WARNING, error=type(exc).__name__)
            return self._schedule(extract_heavy, job, self._config)
        result: Future[HeavyResult] = Future()
        light = dataclasses.replace(job, data=b"")
        future = self._schedule(extract_shared, where, light, self._config)
        future.add_done_callback(lambda done: self._settle(done, shared, where, job, result))
        return result

    def _settle(
        self,
        done: Future[HeavyResult],
        shared: SharedBuffers,
        where: SharedBytes,
        job: HeavyJob,
        result: Future[HeavyResult],
    ) -> None:
        """A shared job's outcome into `result`; a worker that could not read the
        memfd has the job again through the pipe, and so have all later ones."""
        shared.give_back(where)
        if not done.cancelled() and isinstance(done.exception(), SharedUnreadable):
            event(_log, "extractor_shared_memory_unreadable", logging.WARNING)
            self._shared = None
            shared.close()
            done = self._schedule(extract_heavy, job, self._config)
            done.add_done_callback(lambda again: _copy(again, result))
        else:
            _copy(done, result)

    def _schedule(self, fn: Callable[..., HeavyResult], *args: Any) -> Future[HeavyResult]:
        def schedule() -> Future[HeavyResult]:  # on the pool of the moment
            return self._pool.schedule(fn, args=args, timeout=self._config.extractor_timeout)

        try:
            return schedule()
        except RuntimeError as exc:
            event(_log, "extractor_pool_failed", logging.ERROR, error=type(exc).__name__)
        self._stop_workers()
        self._pool = self._new_pool()
        try:
            return schedule()
        except RuntimeError as exc:
            failed: Future[HeavyResult] = Future()
            failed.set_exception(exc)
            return failed

    def _stop_workers(self) -> None:
        self._pool.stop()  # type: ignore[no-untyped-call]  # pebble leaves it unannotated
        self._pool.join()

    def close(self) -> None:
        """Stops the workers, running jobs included (their futures are cancelled)."""
        self._stop_workers()
        if self._shared is not None:
            self._shared.close()

    def __enter__(self) -> AttachmentPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _copy(done: Future[HeavyResult], into: Future[HeavyResult]) -> None:
    if done.cancelled():
        into.cancel()
    elif (error := done.exception()) is not None:
        into.set_exception(error)
    else:
        into.set_result(done.result())


def result_or_unscannable(future: Future[HeavyResult], job: HeavyJob) -> HeavyResult:
    """The job's result, or its attachment as unscannable: "timeout" when the worker
    overran its time, "malformed" for any other failure (a worker killed by memory,
    a cancelled job ...). Blocks until the job ends, which its timeout bounds."""
    reason: UnscannableReason
    try:
        return future.result()
    except TimeoutError:
        reason = "timeout"
    except Exception as exc:
        # The type only: exception text can carry content from the file.
        event(_log, "extractor_failed", logging.WARNING, kind=job.kind, error=type(exc).__name__)
        reason = "malformed"
    return Extraction(unscannable=[(job.place, reason)])
