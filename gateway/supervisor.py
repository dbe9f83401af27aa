"""Pre-fork supervision: N server processes share the listening sockets.

The parent binds the sockets, forks the children and then only forwards
signals and replaces a child that died. Children die with the parent
(PR_SET_PDEATHSIG), so killing the parent never leaves orphans serving.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import time
from collections.abc import Callable

from gateway.logs import event

log = logging.getLogger("gateway.supervisor")

_PR_SET_PDEATHSIG = 1
_RESTART_DELAY = 1.0


def _die_with_parent() -> None:
    # Not on Linux: no prctl, but the parent's SIGTERM still reaches the child.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _spawn(child: Callable[[int], None], index: int) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _die_with_parent()
            if os.getppid() == parent:  # else the parent died before prctl took effect
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                # Until the child's loop takes over SIGHUP (policy and key
                # reload), an early one must not kill it.
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                child(index)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    return pid


def supervise(processes: int, child: Callable[[int], None]) -> None:
    """Run `child` in `processes` forked processes until SIGTERM/SIGINT; then drain them.

    Each child is given its index (0 to processes - 1); one that dies is replaced
    under the same index. SIGHUP is passed on to every child.
    """
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):  # exited, not yet reaped
                os.kill(pid, signal.SIGTERM)

    def forward(signum: int, _frame: object) -> None:
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    children: dict[int, int] = {}  # pid: index
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, forward)  # each process reloads its policy and keys
    # What start-up built (the compiled patterns, name lists, policy) stays shared with
    # the children: a collection in a child would otherwise write to every page holding
    # one of these objects, and copy it.
    gc.collect()
    gc.freeze()
    for index in range(processes):
        children[_spawn(child, index)] = index
    event(log, "supervising", processes=processes)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, -1)
        if index >= 0 and not stopping:
            event(log, "process_exited", logging.ERROR, child=pid, status=status)
            time.sleep(_RESTART_DELAY)
            if not stopping:
                children[_spawn(child, index)] = index
    event(log, "stopped")
