"""The policy a running server decides with, and its reload.

A reload loads and compiles the whole directory first and swaps the new
policy in with one assignment, so a message is always decided by one
complete policy. If loading fails, the running policy stays.

A reload is asked by SIGHUP (this node's processes) or through the database
(`phigate policy reload`: every node). Each process reports the policy it runs
with its heartbeat (`gateway.store.nodes.beat`), which is how the command
learns the outcome from every process of every node.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.logs import event
from gateway.policy.engine import CompiledPolicy
from gateway.policy.loader import PolicyError, load_policy, shipped_policy_dir

if TYPE_CHECKING:  # the store loads only in the server, not for `phigate policy check`
    from gateway.store.nodes import PolicyState

log = logging.getLogger("gateway.policy")


def policy_directory(configured: str) -> Path:
    return Path(configured) if configured else shipped_policy_dir()


class LivePolicy:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.current: CompiledPolicy = load_policy(directory)  # PolicyError stops start-up
        self.loaded_at = time.time()
        self.checked_at = self.loaded_at
        self.error: str | None = None  # the last reload's problems
        self.reload_id = 0  # the last reload asked through the database acted on
        self.signalled = False  # reloaded by SIGHUP since the last heartbeat

    def started(self, reload_id: int) -> None:
        """Call in each server process once it serves; reloads asked before are done."""
        self.reload_id = reload_id
        event(log, "policy_loaded", version=self.current.version, rules=len(self.current.rules))

    def on_signal(self) -> None:
        """SIGHUP: reload now; the next heartbeat reports it."""
        self.reload()
        self.signalled = True

    def asked(self, reload_id: int) -> None:
        """The newest reload asked through the database: reload unless done already.

        `phigate policy reload` records its request before it signals this
        node's server, so a SIGHUP since the last heartbeat has acted on it."""
        if reload_id > self.reload_id and not self.signalled:
            self.reload()
        self.reload_id = max(reload_id, self.reload_id)
        self.signalled = False

    def reload(self) -> bool:
        try:
            policy = load_policy(self.directory)
        except PolicyError as exc:
            # The problems name files, lines and keys of the admin's own policy.
            event(
                log,
                "policy_reload_failed",
                logging.ERROR,
                version=self.current.version,
                problems=[str(p) for p in exc.problems],
            )
            self.error, self.checked_at = str(exc), time.time()
            return False
        self.current = policy
        self.loaded_at = self.checked_at = time.time()
        self.error = None
        event(log, "policy_reloaded", version=policy.version, rules=len(policy.rules))
        return True

    def state(self, node: str) -> PolicyState:
        from gateway.store.nodes import PolicyState

        return PolicyState(
            node=node,
            pid=os.getpid(),
            version=self.current.version,
            loaded_at=self.loaded_at,
            checked_at=self.checked_at,
            error=self.error,
            reload_id=self.reload_id,
        )
