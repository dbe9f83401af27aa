"""Consent: whether a recipient has authorized mail for a purpose (e.g. marketing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class ConsentSource(Protocol):
    def states(self, recipients: Sequence[str], purpose: str) -> Mapping[str, str]:
        """Consent state per recipient for `purpose`: granted, revoked, expired or
        opted_out; recipients without a record may be left out (they are "none")."""
        ...


class NoConsentRecords:
    """STAND-IN until the consent registry exists: nobody has authorized anything.

    Every recipient is "none", so a policy that requires an authorization for
    marketing refuses all marketing: the fail-closed reading of "no records".
    """

    def states(self, recipients: Sequence[str], purpose: str) -> Mapping[str, str]:
        return {}
