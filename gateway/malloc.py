"""glibc's allocator, told to hand memory back to the system.

By default glibc raises its mmap threshold each time a large block is freed,
so after the first few multi-megabyte messages every later one comes from the
heap, and the heap keeps it: a server that once held fifty 10 MB messages stays
at that size. A fixed threshold keeps blocks of 1 MiB and more in their own
mappings, returned on free; small objects (and all of a 5 KB message's) are
not affected. Compiling the pattern database leaves about 100 MB of small
blocks free in the heap, which glibc keeps unless asked (`trim`).

Where the C library is not glibc, both do nothing and return False.
"""

from __future__ import annotations

import ctypes
from typing import Any

_M_MMAP_THRESHOLD = -3  # from glibc's <malloc.h>
LARGE_BLOCK = 1024 * 1024


def _glibc_call(name: str, *args: int) -> bool:
    try:
        function: Any = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return False
    return bool(function(*args))


def return_large_blocks() -> bool:
    """Fix the mmap threshold at LARGE_BLOCK."""
    return _glibc_call("mallopt", _M_MMAP_THRESHOLD, LARGE_BLOCK)


def trim() -> bool:
    """Return the heap's free pages to the system."""
    return _glibc_call("malloc_trim", 0)
