"""Content extraction: a message's text, clinical payloads and unscannable parts.

Two phases, so heavy formats run in killable worker processes:

    extraction, jobs = walk(message, config)          # in-process, fast
    futures = [pool.submit(job) for job in jobs]      # PDF, DOCX, XLSX, zip, big HTML
    for job, future in zip(jobs, futures):
        merge(extraction, result_or_unscannable(future, job), config)
"""

from gateway.inspect.extract.clinical import find_structured
from gateway.inspect.extract.collect import merge
from gateway.inspect.extract.heavy import extract_heavy
from gateway.inspect.extract.jobs import HeavyJob, HeavyKind, HeavyResult
from gateway.inspect.extract.mime import walk
from gateway.inspect.extract.pool import AttachmentPool, result_or_unscannable
from gateway.inspect.extract.text import normalise_text

__all__ = [
    "AttachmentPool",
    "HeavyJob",
    "HeavyKind",
    "HeavyResult",
    "extract_heavy",
    "find_structured",
    "merge",
    "normalise_text",
    "result_or_unscannable",
    "walk",
]
