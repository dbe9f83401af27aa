"""What a test needs from the machine. The test command (scripts/test, which sets
PHIGATE_TEST_POSTGRES) installs and starts all of it, so there, and in CI, something
missing fails the test; on a developer's machine without it the test is skipped."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    if os.environ.get("PHIGATE_TEST_POSTGRES") or os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def tool(name: str) -> str:
    """The path of a command the test runs."""
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed (./scripts/test installs it)")
    return found
