"""Roles: what a person (on the reviewer's pages) or an API token (as scopes) may do.

One table for both, so a role means the same wherever it is given:

| role | pages | API token scopes |
|---|---|---|
| admin | audit search, timelines, reports | consent:read, consent:write, portal:recall |
| operator (the queue) | — | portal:recall |
| auditor (read-only) | audit search, timelines, reports | consent:read |
| consent-writer | — | consent:read, consent:write |
"""

from __future__ import annotations

from typing import get_args

from gateway.config import Role
from gateway.web import tokens

ROLES: tuple[str, ...] = get_args(Role)

# Pages (gateway.web.reviewer) by what they show.
AUDIT = "audit"  # audit search and message timelines
REPORTS = "reports"
PAGES = (AUDIT, REPORTS)

_PAGES: dict[str, frozenset[str]] = {
    "admin": frozenset((AUDIT, REPORTS)),
    "operator": frozenset(),
    "auditor": frozenset((AUDIT, REPORTS)),
    "consent-writer": frozenset(),
}
_SCOPES: dict[str, tuple[str, ...]] = {
    # Sending is a system's, never a person's: no role gives scope send.
    "admin": (tokens.READ, tokens.WRITE, tokens.RECALL),
    "operator": (tokens.RECALL,),
    "auditor": (tokens.READ,),
    "consent-writer": (tokens.READ, tokens.WRITE),
}


class RoleError(ValueError):
    """A role name that is not one of ROLES."""


def check_role(role: str) -> str:
    if role not in ROLES:
        raise RoleError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def may_see(role: str, page: str) -> bool:
    return page in _PAGES.get(role, frozenset())


def pages_of(role: str) -> tuple[str, ...]:
    return tuple(p for p in PAGES if may_see(role, p))


def token_scopes(role: str) -> tuple[str, ...]:
    """The API token scopes a token made `--role ROLE` gets."""
    return _SCOPES[check_role(role)]
