"""Webhook subscriptions: a principal's or an API token's URL, the kinds of event it
wants, its secret.

A subscription names a principal (the events of all its mail) or an API token
(the events of the mail sent with that token only, as its `accepted` audit
event records: gateway.store.audit_facets.accepted_token).

The secret is sealed with the keyring like message content (a data key under
the current master key, the subscription's name as associated data), so the
database alone never yields it and `phigate keys rotate` re-wraps it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from gateway.audit import cursors
from gateway.config import WEBHOOK_KINDS
from gateway.store import principals
from gateway.store.keyring import Keyring, Sealed
from gateway.store.principals import NAME_PATTERN
from gateway.store.schema import api_tokens, webhook_subscriptions
from gateway.webhooks import signing

_s = webhook_subscriptions.c


class SubscriptionError(Exception):
    """A subscription that cannot be made or found; the message says why and what to do."""


@dataclass(frozen=True)
class Subscription:
    id: int
    name: str
    principal: str | None  # None: scoped to `token`
    token: str | None  # the API token's name; None: scoped to `principal`
    url: str
    kinds: tuple[str, ...]
    sealed: Sealed
    created_at: float
    created_by: str

    def secret(self, keyring: Keyring) -> bytes:
        return keyring.open(self.sealed, _context(self.name))

    @property
    def scope(self) -> tuple[str, str]:
        """Whose events: ("principal", "ehr1") or ("token", "billing-api")."""
        if self.token is not None:
            return "token", self.token
        return "principal", self.principal or ""


def _context(name: str) -> bytes:
    return f"webhook-secret:{name}".encode()


def parse_kinds(text: str) -> tuple[str, ...]:
    """`delivered,bounced` -> the kinds, checked; `all`: every kind."""
    if text.strip() == "all":
        return WEBHOOK_KINDS
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in WEBHOOK_KINDS]
    if unknown or not kinds:
        raise SubscriptionError(
            f"unknown event kind {', '.join(unknown) or '(none given)'}: write some of "
            f"{','.join(WEBHOOK_KINDS)} separated by commas, or `all`"
        )
    return kinds


def _of(row: object) -> Subscription:
    r = row._mapping  # type: ignore[attr-defined]
    return Subscription(
        r["id"],
        r["name"],
        r["principal"] or None,  # "" for a token's subscription
        r["token"],
        r["url"],
        tuple(r["events"].split(",")),
        Sealed(r["key_id"], r["wrapped_key"], r["secret"]),
        r["created_at"],
        r["created_by"],
    )


def add(
    conn: Connection,
    keyring: Keyring,
    *,
    name: str,
    principal: str | None,
    token: str | None = None,
    url: str,
    kinds: Sequence[str],
    actor: str,
    now: float,
    cursor: str,
) -> tuple[Subscription, bytes]:
    """Store a subscription with a new secret; (it, the secret's bytes) to show once.

    The first subscription puts the outbox's `cursor` at the trail's head: while
    there is none the server reads nothing, and what happened meanwhile is no
    subscription's business."""
    if not NAME_PATTERN.match(name):
        raise SubscriptionError(
            f"webhook name {name!r} is not usable: write 1 to 64 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit (e.g. billing-status)"
        )
    if (principal is None) == (token is None):
        raise SubscriptionError(
            "give --principal P (the events of all its mail) or --token T (of the mail sent "
            "with that API token), one of them"
        )
    if principal is not None and principals.get(conn, principal) is None:
        raise SubscriptionError(
            f"no principal {principal!r}: `phigate principal ls` lists them "
            "(a subscription gets the events of that principal's mail)"
        )
    if token is not None and not _token_exists(conn, token):
        raise SubscriptionError(
            f"no API token {token!r}: `phigate token ls` lists them "
            "(a subscription gets the events of the mail sent with that token)"
        )
    if get(conn, name) is not None:
        raise SubscriptionError(
            f"a webhook named {name!r} exists already: choose another name, or "
            f"`phigate webhook rm {name}` first"
        )
    if not any_exist(conn):
        cursors.restart_at_head(conn, cursor, now)
    secret = signing.new_secret()
    sealed = keyring.seal(secret, _context(name))
    conn.execute(
        insert(webhook_subscriptions).values(
            name=name,
            principal=principal or "",
            token=token,
            url=url,
            events=",".join(kinds),
            key_id=sealed.key_id,
            wrapped_key=sealed.wrapped_key,
            secret=sealed.ciphertext,
            created_at=now,
            created_by=actor,
        )
    )
    made = get(conn, name)
    assert made is not None
    return made, secret


def get(conn: Connection, name: str) -> Subscription | None:
    row = conn.execute(select(webhook_subscriptions).where(_s.name == name)).first()
    return _of(row) if row is not None else None


def named(conn: Connection, name: str) -> Subscription:
    found = get(conn, name)
    if found is None:
        raise SubscriptionError(f"no webhook named {name!r}: `phigate webhook ls` lists them")
    return found


def any_exist(conn: Connection) -> bool:
    return conn.execute(select(_s.id).limit(1)).first() is not None


def list_all(conn: Connection) -> list[Subscription]:
    return [_of(r) for r in conn.execute(select(webhook_subscriptions).order_by(_s.name))]


def by_id(conn: Connection, ids: Sequence[int]) -> dict[int, Subscription]:
    rows = conn.execute(select(webhook_subscriptions).where(_s.id.in_(list(ids))))
    return {s.id: s for s in map(_of, rows)}


def _token_exists(conn: Connection, name: str) -> bool:
    t = api_tokens.c
    return conn.execute(select(t.id).where(t.name == name)).first() is not None


def for_principals(conn: Connection, names: Sequence[str]) -> list[Subscription]:
    query = select(webhook_subscriptions).where(
        _s.principal.in_(sorted(set(names))), _s.token.is_(None)
    )
    return [_of(r) for r in conn.execute(query.order_by(_s.id))]


def any_for_tokens(conn: Connection) -> bool:
    return conn.execute(select(_s.id).where(_s.token.is_not(None)).limit(1)).first() is not None


def for_tokens(conn: Connection, names: Sequence[str]) -> list[Subscription]:
    query = select(webhook_subscriptions).where(_s.token.in_(sorted(set(names))))
    return [_of(r) for r in conn.execute(query.order_by(_s.id))]


def remove(conn: Connection, name: str) -> Subscription:
    """Remove a subscription and its outbox rows (sent, pending and dead alike)."""
    found = named(conn, name)
    conn.execute(delete(webhook_subscriptions).where(_s.id == found.id))
    return found
