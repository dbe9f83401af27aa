"""People who sign in to the reviewer's pages: their records, every change audited.

A person has a name, one role (gateway.web.roles), an argon2id password hash
and, once enrolled, a sealed TOTP secret (gateway.web.factors). Wrong
passwords and codes are counted; `lockout_attempts` in a row lock the person
out for a while. Each change names who made it (`cli:<OS user>`), each
sign-in attempt the person (`web:<name>`), in the audit trail; events hold
names, roles and reasons, never a password, a secret or a code.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.store.principals import NAME_PATTERN
from gateway.store.schema import users
from gateway.web import roles, sessions

USER_EVENT = "user"  # a change to a person's record; result says which
SIGN_IN_EVENT = "web_sign_in"


class UserError(Exception):
    """A change that cannot be made, with a message for the admin."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    password_hash: str
    totp_sealed: bytes | None
    totp_last_step: int | None
    failed_attempts: int
    locked_until: float | None
    created_at: float
    disabled_at: float | None

    @property
    def enrolled(self) -> bool:
        return self.totp_sealed is not None

    @property
    def actor(self) -> str:
        """This person as an audit event's actor."""
        return f"web:{self.name}"

    def locked(self, now: float) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def state(self, now: float) -> str:
        if self.disabled_at is not None:
            return "disabled"
        return "locked" if self.locked(now) else "active"


def _user(row: Row[tuple[object, ...]]) -> User:
    r = row._mapping
    return User(
        id=r["id"],
        name=r["name"],
        role=r["role"],
        password_hash=r["password_hash"],
        totp_sealed=r["totp_sealed"],
        totp_last_step=r["totp_last_step"],
        failed_attempts=r["failed_attempts"],
        locked_until=r["locked_until"],
        created_at=r["created_at"],
        disabled_at=r["disabled_at"],
    )


def get(conn: Connection, name: str) -> User | None:
    row = conn.execute(select(users).where(users.c.name == name)).first()
    return _user(row) if row is not None else None


def by_id(conn: Connection, user_id: int) -> User | None:
    row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return _user(row) if row is not None else None


def list_all(conn: Connection) -> list[User]:
    return [_user(r) for r in conn.execute(select(users).order_by(users.c.name))]


def _existing(conn: Connection, name: str) -> User:
    found = get(conn, name)
    if found is None:
        raise UserError(f"no person named {name!r} (see `phigate user ls`)")
    return found


def _changed(
    conn: Connection, name: str, what: str, now: float, actor: str, detail: str | None = None
) -> None:
    trail.append(
        conn, [AuditEvent(USER_EVENT, what, principal=name, detail=detail, ts=now, actor=actor)]
    )


def add(conn: Connection, name: str, role: str, password_hash: str, now: float, actor: str) -> None:
    """Record person NAME with this role and password hash; `actor` added them."""
    if not NAME_PATTERN.match(name):
        raise UserError(
            f"{name!r} is not a valid name: use letters, digits, '.', '_' or '-' "
            "(at most 64, starting with a letter or digit)"
        )
    roles.check_role(role)
    try:
        conn.execute(
            insert(users).values(name=name, role=role, password_hash=password_hash, created_at=now)
        )
    except IntegrityError:
        raise UserError(f"a person named {name!r} exists already: choose another name") from None
    _changed(conn, name, "added", now, actor, f"role={role}")


def _update(conn: Connection, user: User, **values: object) -> None:
    conn.execute(update(users).where(users.c.id == user.id).values(**values))


def set_password(conn: Connection, name: str, password_hash: str, now: float, actor: str) -> None:
    """A new password; the person's sessions end (sign in again with it)."""
    user = _existing(conn, name)
    _update(conn, user, password_hash=password_hash)
    sessions.end_all(conn, user.id)
    _changed(conn, name, "password_changed", now, actor)


def set_role(conn: Connection, name: str, role: str, now: float, actor: str) -> None:
    """The person's role from their next request on."""
    user = _existing(conn, name)
    roles.check_role(role)
    _update(conn, user, role=role)
    _changed(conn, name, "role_changed", now, actor, f"role={role} was={user.role}")


def disable(conn: Connection, name: str, now: float, actor: str) -> None:
    """The person cannot sign in any more, and their sessions end now."""
    user = _existing(conn, name)
    if user.disabled_at is not None:
        raise UserError(f"{name!r} is disabled already")
    _update(conn, user, disabled_at=now)
    sessions.end_all(conn, user.id)
    _changed(conn, name, "disabled", now, actor)


def set_totp(conn: Connection, name: str, sealed: bytes, now: float, actor: str) -> None:
    """A new TOTP secret (sealed): codes from an earlier one stop working."""
    user = _existing(conn, name)
    _update(conn, user, totp_sealed=sealed, totp_last_step=None)
    _changed(conn, name, "totp_enrolled", now, actor)


def unlock(conn: Connection, name: str, now: float, actor: str) -> None:
    """Clear a lockout and the count of wrong attempts."""
    user = _existing(conn, name)
    _update(conn, user, failed_attempts=0, locked_until=None)
    _changed(conn, name, "unlocked", now, actor)


# --- signing in ---------------------------------------------------------------------


def refused(conn: Connection, user: User | None, reason: str, client: str, now: float) -> None:
    """A sign-in refused before any factor was checked (unknown, disabled, locked,
    no TOTP): audited, nothing counted. An unknown name is not recorded: it may
    be a password typed in the wrong field."""
    trail.append(
        conn,
        [
            AuditEvent(
                SIGN_IN_EVENT,
                "refused",
                client_ip=client,
                detail=reason,
                ts=now,
                actor=user.actor if user else None,
            )
        ],
    )


def failed(
    conn: Connection,
    user: User,
    factor: str,
    attempts: int,
    lockout_seconds: float,
    client: str,
    now: float,
) -> float | None:
    """A wrong password or code (`factor`): counted, audited, and after `attempts`
    in a row a lockout, whose end is returned (and the person's sessions end)."""
    counted = conn.execute(
        update(users)
        .where(users.c.id == user.id)
        .values(failed_attempts=users.c.failed_attempts + 1)
        .returning(users.c.failed_attempts)
    ).scalar_one()
    events = [
        AuditEvent(
            SIGN_IN_EVENT,
            "failed",
            client_ip=client,
            detail=f"wrong {factor}, attempt {counted}",
            ts=now,
            actor=user.actor,
        )
    ]
    until = None
    if counted >= attempts:
        until = now + lockout_seconds
        _update(conn, user, failed_attempts=0, locked_until=until)
        sessions.end_all(conn, user.id)
        events.append(
            AuditEvent(SIGN_IN_EVENT, "locked", client_ip=client, ts=now, actor=user.actor)
        )
    trail.append(conn, events)
    return until


def use_step(conn: Connection, user: User, step: int) -> bool:
    """Record that a code of time `step` was used; False if it (or a later one) was already."""
    result = conn.execute(
        update(users)
        .where(
            users.c.id == user.id,
            users.c.totp_last_step.is_(None) | (users.c.totp_last_step < step),
        )
        .values(totp_last_step=step)
    )
    return result.rowcount == 1


def signed_in(conn: Connection, user: User, client: str, now: float) -> None:
    """Every factor was right: the count of wrong attempts starts again."""
    _update(conn, user, failed_attempts=0, locked_until=None)
    trail.append(
        conn,
        [
            AuditEvent(
                SIGN_IN_EVENT,
                "ok",
                client_ip=client,
                detail=f"role={user.role}",
                ts=now,
                actor=user.actor,
            )
        ],
    )
