"""gateway.malloc in a fresh interpreter: a message-sized block freed is used again
without new page faults, a larger one goes back to the system when freed, and a trim
gives back what the heap kept."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from gateway import malloc

PROBE = textwrap.dedent(
    """
    import json, os, resource
    from gateway import malloc

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def resident_kb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))

    configured = malloc.return_large_blocks()
    message = os.urandom(2 * 1024 * 1024)
    copy = message + b"."  # the heap grows once
    del copy
    before = faults()
    for _ in range(20):
        copy = message + b"."  # a copy of a 2 MB message, made and freed
        del copy
    reused_faults = faults() - before

    # Half of what the heap may keep free, in message-sized blocks held at once.
    held = [message + bytes([n]) for n in range(malloc.KEEP_FREE // len(message) // 2)]
    del held
    kept_kb = resident_kb()
    trimmed = malloc.trim()
    after_trim_kb = resident_kb()

    large = message * 3  # 6 MB, written through
    with_large_kb = resident_kb()
    del large
    without_large_kb = resident_kb()
    print(json.dumps(dict(
        configured=configured, reused_faults=reused_faults, trimmed=trimmed,
        kept_kb=kept_kb, after_trim_kb=after_trim_kb,
        with_large_kb=with_large_kb, without_large_kb=without_large_kb,
    )))
    """
)


@pytest.fixture(scope="module")
def probe() -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    result: dict[str, int] = json.loads(out)
    if not result["configured"]:
        pytest.skip("the C library is not glibc")
    return result


def test_a_freed_message_sized_block_is_used_again_without_faulting(
    probe: dict[str, int],
) -> None:
    # Fresh pages each time would be 20 x 512 faults.
    assert probe["reused_faults"] < 200


def test_what_the_heap_keeps_a_trim_gives_back(probe: dict[str, int]) -> None:
    assert probe["trimmed"]
    assert probe["kept_kb"] - probe["after_trim_kb"] > malloc.KEEP_FREE // 1024 // 4


def test_a_block_past_the_large_size_goes_back_when_freed(probe: dict[str, int]) -> None:
    assert malloc.LARGE_BLOCK < 6 * 1024 * 1024
    assert probe["with_large_kb"] - probe["without_large_kb"] > 5 * 1024
