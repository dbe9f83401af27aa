"""The consent states: what the registry answers per recipient and purpose, and the
policy condition `consent:` reads."""

from __future__ import annotations

from typing import Literal, get_args

ConsentState = Literal["granted", "none", "revoked", "expired", "opted_out"]
CONSENT_STATES: tuple[str, ...] = get_args(ConsentState)
# A consent that was there and is gone: marketing queued under it is not sent.
WITHDRAWN: frozenset[str] = frozenset({"revoked", "expired", "opted_out"})
