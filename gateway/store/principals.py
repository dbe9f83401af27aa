"""Sending principals: systems that authenticate with AUTH and may send as their domains."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.mail.headers import author_domains
from gateway.store.schema import principals

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DOMAIN_PATTERN = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)

# Secrets are 192 random bits, so argon2 need not stretch a guessable password:
# OWASP's minimum profile (19 MiB, 2 passes) keeps an AUTH storm from
# costing 64 MiB per check. Hashes record their own parameters, so older
# ones still verify.
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class PrincipalError(Exception):
    """A principal operation that cannot be done, with a message for the admin."""


@dataclass(frozen=True)
class Principal:
    name: str
    domains: tuple[str, ...]  # envelope sender domains (MAIL FROM), also allowed in From:
    enabled: bool
    secret_hash: str
    created_at: float
    # Further domains its From: and Sender: may name (a CRM sending for several brands).
    from_domains: tuple[str, ...] = ()

    @property
    def author_domains(self) -> tuple[str, ...]:
        return author_domains(self.domains, self.from_domains)


def stored_author_domains(domains: str, from_domains: str | None) -> tuple[str, ...]:
    """`author_domains` of a principal row's JSON columns."""
    return author_domains(json.loads(domains), json.loads(from_domains or "[]"))


def _row_to_principal(row: object) -> Principal:
    r = row._mapping  # type: ignore[attr-defined]
    return Principal(
        r["name"],
        tuple(json.loads(r["domains"])),
        bool(r["enabled"]),
        r["secret_hash"],
        r["created_at"],
        tuple(json.loads(r["from_domains"] or "[]")),
    )


def validate_domains(domains: Sequence[str], option: str = "--domain") -> tuple[str, ...]:
    if not domains and option == "--domain":
        raise PrincipalError(
            "give at least one sender domain with --domain, e.g. --domain example.org"
        )
    cleaned = []
    for domain in domains:
        d = domain.strip().lower().rstrip(".")
        if not DOMAIN_PATTERN.match(d):
            raise PrincipalError(
                f"{option} {domain!r} is not a domain name (write e.g. {option} example.org)"
            )
        cleaned.append(d)
    return tuple(dict.fromkeys(cleaned))


def add(
    conn: Connection, name: str, domains: Sequence[str], from_domains: Sequence[str] = ()
) -> str:
    """Create a principal; returns its secret (shown once, stored only as an argon2 hash)."""
    if not NAME_PATTERN.match(name):
        raise PrincipalError(
            f"{name!r} is not a valid principal name: use letters, digits, '.', '_' or '-' "
            "(at most 64, starting with a letter or digit)"
        )
    clean = validate_domains(domains)
    extra = validate_domains(from_domains, "--from-domain")
    secret = secrets.token_urlsafe(24)
    try:
        conn.execute(
            insert(principals).values(
                name=name,
                secret_hash=HASHER.hash(secret),
                domains=json.dumps(list(clean)),
                from_domains=json.dumps(list(extra)),
                enabled=True,
                created_at=time.time(),
            )
        )
    except IntegrityError:
        raise PrincipalError(
            f"principal {name!r} already exists (see `phigate principal ls`)"
        ) from None
    return secret


def get(conn: Connection, name: str) -> Principal | None:
    row = conn.execute(select(principals).where(principals.c.name == name)).first()
    return _row_to_principal(row) if row is not None else None


def list_all(conn: Connection) -> list[Principal]:
    return [
        _row_to_principal(r) for r in conn.execute(select(principals).order_by(principals.c.name))
    ]


def _update(conn: Connection, name: str, **values: object) -> None:
    result = conn.execute(update(principals).where(principals.c.name == name).values(**values))
    if result.rowcount == 0:
        raise PrincipalError(f"no principal named {name!r} (see `phigate principal ls`)")


def set_enabled(conn: Connection, name: str, enabled: bool) -> None:
    _update(conn, name, enabled=enabled)


def set_from_domains(conn: Connection, name: str, from_domains: Sequence[str]) -> tuple[str, ...]:
    """Replace the extra From: domains of a principal (none: only its sender domains)."""
    clean = validate_domains(from_domains, "--from-domain")
    _update(conn, name, from_domains=json.dumps(list(clean)))
    return clean
