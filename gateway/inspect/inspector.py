"""Inspection of one message: extract, then detect; heavy attachments in worker processes.

Text, HTML and clinical payloads are extracted in the calling process (well
under a millisecond for typical mail). PDF, DOCX, XLSX and archives go to a
pool of worker processes with a time and memory budget each: a hostile file
can cost a worker, never the server, and comes back as "unscannable".
"""

from __future__ import annotations

import asyncio
from email.message import Message

from gateway.config import InspectionConfig
from gateway.inspect.content import Extraction
from gateway.inspect.detect import detect, prepare
from gateway.inspect.extract import AttachmentPool, HeavyJob, merge, result_or_unscannable, walk
from gateway.inspect.findings import Findings

# Above this much extracted text, detection runs in a thread so that the event
# loop keeps serving other sessions meanwhile (a 5 MB document takes ~0.5 s).
_LARGE_TEXT = 200_000


class Inspector:
    def __init__(self, config: InspectionConfig, workers: int = 2) -> None:
        self.config = config
        self.workers = workers
        prepare(config)  # compile the patterns now, not on the first message
        self._pool: AttachmentPool | None = None  # started on the first heavy attachment

    def _attachments(self) -> AttachmentPool:
        if self._pool is None:
            self._pool = AttachmentPool(self.config, max_workers=self.workers)
        return self._pool

    def inspect(self, message: Message) -> Findings:
        """Blocking inspection, for the command line and tests."""
        extraction, jobs = walk(message, self.config)
        for job in jobs:
            merge(
                extraction, result_or_unscannable(self._attachments().submit(job), job), self.config
            )
        return detect(extraction, self.config)

    async def inspect_async(self, message: Message) -> Findings:
        """Inspection that waits for worker processes without blocking the event loop."""
        extraction, jobs = walk(message, self.config)
        if jobs:
            await self._heavy(extraction, jobs)
        if sum(len(segment.text) for segment in extraction.segments) > _LARGE_TEXT:
            return await asyncio.to_thread(detect, extraction, self.config)
        return detect(extraction, self.config)

    async def _heavy(self, extraction: Extraction, jobs: list[HeavyJob]) -> None:
        pool = self._attachments()
        futures = [pool.submit(job) for job in jobs]
        await asyncio.wait([asyncio.wrap_future(f) for f in futures])
        for job, future in zip(jobs, futures, strict=True):
            merge(extraction, result_or_unscannable(future, job), self.config)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
