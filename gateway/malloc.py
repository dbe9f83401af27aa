"""glibc's allocator, told when to hand memory back to the system.

By default glibc raises its mmap threshold each time a large block is freed,
so after the first few multi-megabyte messages every later one comes from the
heap, and the heap keeps it: a server that once held fifty 10 MB messages stays
at that size. A fixed threshold keeps blocks of LARGE_BLOCK and more in their
own mappings, returned on free. Smaller blocks (every copy of a message of up
to a few MB) come from the heap, and the heap keeps up to KEEP_FREE at its top
between trims: each fresh page costs a fault (about 2 µs here, 1 ms for 2 MB),
and a message is copied a dozen times on its way, so freed pages are used
again rather than given back and faulted in anew. `trim` gives them back once
no large message is in progress (gateway/turns.py), and after start-up, where
compiling the pattern database leaves about 100 MB of small free blocks.

Where the C library is not glibc, both do nothing and return False.
"""

from __future__ import annotations

import ctypes
from typing import Any

_M_TRIM_THRESHOLD = -1  # from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
LARGE_BLOCK = 4 * 1024 * 1024
KEEP_FREE = 16 * 1024 * 1024


def _glibc_call(name: str, *args: int) -> bool:
    try:
        function: Any = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return False
    return bool(function(*args))


def return_large_blocks() -> bool:
    """Fix the mmap threshold at LARGE_BLOCK, and let the heap keep KEEP_FREE."""
    return _glibc_call("mallopt", _M_MMAP_THRESHOLD, LARGE_BLOCK) and _glibc_call(
        "mallopt", _M_TRIM_THRESHOLD, KEEP_FREE
    )


def trim() -> bool:
    """Return the heap's free pages to the system."""
    return _glibc_call("malloc_trim", 0)
