"""Consent: whether a recipient has authorized mail for a purpose (e.g. marketing).

The record is kept by `gateway.consent.registry`; the server reads it through
`gateway.consent.source.RegistryConsent`. The words every stage shares are
spelled once: the states in `gateway.consent.states`, the purposes (marketing
and its sub-purposes) in `gateway.consent.purpose`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class ConsentSource(Protocol):
    def states(self, recipients: Sequence[str], purpose: str) -> Mapping[str, str]:
        """Consent state per recipient for `purpose`: granted, revoked, expired or
        opted_out; recipients without a record may be left out (they are "none")."""
        ...


class NoConsentRecords:
    """A source without records: nobody has authorized anything.

    Used where no store is at hand (`phigate policy explain`). Every recipient
    is "none", so a policy that requires an authorization for marketing
    refuses all marketing: the fail-closed reading of "no records".
    """

    def states(self, recipients: Sequence[str], purpose: str) -> Mapping[str, str]:
        return {}
