"""API tokens for the web API: random 256-bit secrets kept only as SHA-256 hashes.

A secret is shown once, when the token is made. Presented as
`Authorization: Bearer <secret>`, it is hashed and looked up by its hash; a
token can be revoked but never shown again. A fast hash is enough: the
secret has 256 random bits, so there is nothing to guess and nothing to
stretch.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.store import principals
from gateway.store.principals import NAME_PATTERN
from gateway.store.schema import api_tokens

READ = "consent:read"
WRITE = "consent:write"
RECALL = "portal:recall"  # the sending system recalls a portal message it sent
SEND = "send"  # sends mail through the send API as the token's principal
SCOPES = (READ, WRITE, RECALL, SEND)
# Names an admin may give for a set of scopes.
SCOPE_NAMES = {
    "consent": (READ, WRITE),
    READ: (READ,),
    WRITE: (WRITE,),
    "portal": (RECALL,),
    RECALL: (RECALL,),
    SEND: (SEND,),
}
PREFIX = "phg_"  # lets secret scanners recognise a leaked token


class TokenError(Exception):
    """A token operation that cannot be done, with a message for the admin."""


@dataclass(frozen=True)
class ApiToken:
    name: str
    scopes: frozenset[str]
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    principal: str | None = None  # whom a token with scope send sends as


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _token(row: object) -> ApiToken:
    r = row._mapping  # type: ignore[attr-defined]
    return ApiToken(
        r["name"],
        frozenset(r["scopes"].split()),
        r["created_at"],
        r["last_used_at"],
        r["revoked_at"],
        r["principal"],
    )


def expand_scopes(names: Iterable[str]) -> tuple[str, ...]:
    """The scopes named (`consent` is both); raises TokenError for an unknown name."""
    scopes: set[str] = set()
    for name in names:
        if name not in SCOPE_NAMES:
            raise TokenError(f"unknown scope {name!r}: use one of {', '.join(SCOPE_NAMES)}")
        scopes.update(SCOPE_NAMES[name])
    if not scopes:
        raise TokenError("give at least one scope, e.g. --scope consent:read")
    return tuple(sorted(scopes))


def add(
    conn: Connection,
    name: str,
    scopes: Iterable[str],
    now: float,
    actor: str,
    principal: str | None = None,
) -> str:
    """Create token NAME with `scopes` (names as for expand_scopes); returns its secret.

    A token with scope send sends as `principal` (an existing one), and needs one.
    `actor` made it (the audit event's actor, e.g. "cli:<OS user>")."""
    if not NAME_PATTERN.match(name):
        raise TokenError(
            f"{name!r} is not a valid token name: use letters, digits, '.', '_' or '-' "
            "(at most 64, starting with a letter or digit)"
        )
    granted = expand_scopes(scopes)
    _check_principal(conn, granted, principal)
    secret = PREFIX + secrets.token_urlsafe(32)
    try:
        conn.execute(
            insert(api_tokens).values(
                name=name,
                secret_hash=_hash(secret),
                scopes=" ".join(granted),
                created_at=now,
                principal=principal,
            )
        )
    except IntegrityError:
        raise TokenError(
            f"a token named {name!r} exists already (also once revoked): choose another name"
        ) from None
    trail.append(
        conn,
        [
            AuditEvent(
                "api_token",
                "added",
                principal=name,
                detail="scopes="
                + ",".join(granted)
                + (f" sends_as={principal}" if principal else ""),
                ts=now,
                actor=actor,
            )
        ],
    )
    return secret


def _check_principal(conn: Connection, scopes: Iterable[str], principal: str | None) -> None:
    if SEND not in scopes:
        if principal is not None:
            raise TokenError("--principal is for tokens with scope send: add --scope send")
        return
    if principal is None:
        raise TokenError(
            "scope send needs the principal the token sends as: add --principal NAME "
            "(see `phigate principal ls`)"
        )
    if principals.get(conn, principal) is None:
        raise TokenError(
            f"no principal named {principal!r}: make it with "
            f"`phigate principal add {principal} --domain DOMAIN` first"
        )


def list_all(conn: Connection) -> list[ApiToken]:
    return [_token(r) for r in conn.execute(select(api_tokens).order_by(api_tokens.c.name))]


def revoke(conn: Connection, name: str, now: float, actor: str) -> None:
    """Stop token NAME from working at once (its row stays, for the record); `actor` asked."""
    result = conn.execute(
        update(api_tokens)
        .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if result.rowcount == 0:
        exists = conn.execute(select(api_tokens.c.id).where(api_tokens.c.name == name)).first()
        if exists is None:
            raise TokenError(f"no token named {name!r} (see `phigate token ls`)")
        raise TokenError(f"token {name!r} is revoked already")
    trail.append(conn, [AuditEvent("api_token", "revoked", principal=name, ts=now, actor=actor)])


def authenticate(conn: Connection, secret: str) -> ApiToken | None:
    """The live token whose secret this is; None for an unknown or revoked one."""
    digest = _hash(secret)
    row = conn.execute(select(api_tokens).where(api_tokens.c.secret_hash == digest)).first()
    # The lookup compares hashes, which tell nothing about the secret; the final
    # check is constant-time all the same, and exact whatever the collation.
    if row is None or not hmac.compare_digest(row.secret_hash, digest):
        return None
    token = _token(row)
    return token if token.revoked_at is None else None


def touch(conn: Connection, name: str, now: float) -> None:
    """Record that token NAME was used (safe to run twice)."""
    conn.execute(
        update(api_tokens)
        .where(api_tokens.c.name == name)
        .where((api_tokens.c.last_used_at.is_(None)) | (api_tokens.c.last_used_at < now))
        .values(last_used_at=now)
    )
