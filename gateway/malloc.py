"""glibc's allocator, told to hand large blocks back to the system when freed.

By default glibc raises its mmap threshold each time a large block is freed,
so after the first few multi-megabyte messages every later one comes from the
heap, and the heap keeps it: a server that once held fifty 10 MB messages stays
at that size. A fixed threshold keeps blocks of 1 MiB and more in their own
mappings, returned on free; small objects (and all of a 5 KB message's) are
not affected.
"""

from __future__ import annotations

import contextlib
import ctypes

_M_MMAP_THRESHOLD = -3  # from glibc's <malloc.h>
LARGE_BLOCK = 1024 * 1024


def return_large_blocks() -> bool:
    """Fix the mmap threshold at LARGE_BLOCK; False where the C library is not glibc."""
    with contextlib.suppress(OSError, AttributeError):
        return bool(ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK))
    return False
