"""The error S/MIME setup raises when an admin must fix something before phigate can start."""

from __future__ import annotations


class SmimeSetupError(Exception):
    """A signing certificate, key or trust bundle that cannot be used; the text says why."""
