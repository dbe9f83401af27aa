"""People for the reviewer's pages: passwords, TOTP codes, roles, lockouts and sessions,
on a real store (SQLite, or PostgreSQL in the run on PostgreSQL), and
`phigate user` / `phigate token add --role` as an admin runs them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyotp
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from stores import cli_store

from gateway.cli import main
from gateway.settings_loader import SettingsError, load_settings
from gateway.store.database import Database
from gateway.store.schema import audit_events, web_sessions
from gateway.store.schema import users as users_table
from gateway.web import factors, roles, sessions, tokens, users
from gateway.web.users import UserError

PASSWORD = "correct horse battery staple"
NOW = 1_800_000_000.0


# --- passwords and codes ------------------------------------------------------------


def test_passwords_are_argon2id_hashes_that_only_the_password_matches() -> None:
    hashed = factors.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    assert factors.password_matches(hashed, PASSWORD)
    assert not factors.password_matches(hashed, PASSWORD + " ")
    assert not factors.password_matches(None, PASSWORD)  # unknown name
    assert not factors.password_matches("not a hash", PASSWORD)


def test_short_passwords_are_refused_with_the_rule() -> None:
    with pytest.raises(factors.FactorError, match="use at least 12"):
        factors.hash_password("short pass")


def test_a_totp_code_matches_its_step_once_and_one_step_either_side() -> None:
    secret = factors.new_totp("alice").secret
    totp = pyotp.TOTP(secret)
    step = totp.timecode(NOW)
    assert factors.totp_step(secret, totp.at(NOW), None, NOW) == step
    assert factors.totp_step(secret, totp.at(NOW - 30), None, NOW) == step - 1  # phone behind
    assert factors.totp_step(secret, totp.at(NOW + 30), None, NOW) == step + 1  # phone ahead
    assert factors.totp_step(secret, totp.at(NOW - 60), None, NOW) is None  # too old
    code = totp.at(NOW)
    assert factors.totp_step(secret, f"{code[:3]} {code[3:]}", None, NOW) == step  # as shown
    assert factors.totp_step(secret, code, step, NOW) is None  # used already
    assert factors.totp_step(secret, totp.at(NOW - 30), step, NOW) is None  # older than used
    for typed in ("", "12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        assert factors.totp_step(secret, typed, None, NOW) is None


def test_the_enrolment_uri_names_the_issuer_and_person() -> None:
    enrolment = factors.new_totp("alice")
    assert enrolment.uri.startswith("otpauth://totp/phigate:alice?")
    assert f"secret={enrolment.secret}" in enrolment.uri and "issuer=phigate" in enrolment.uri


def test_totp_secrets_are_sealed_under_the_web_key_and_bound_to_the_name() -> None:
    key, secret = os.urandom(32), factors.new_totp("alice").secret
    sealed = factors.seal_totp(key, "alice", secret)
    assert secret.encode() not in sealed
    assert factors.open_totp(key, "alice", sealed) == secret
    with pytest.raises(factors.FactorError, match="enroll mallory"):
        factors.open_totp(key, "mallory", sealed)  # moved to another person's row
    with pytest.raises(factors.FactorError, match=r"cannot be opened with keys/web\.key"):
        factors.open_totp(os.urandom(32), "alice", sealed)  # the web key was replaced


# --- roles ---------------------------------------------------------------------------


def test_roles_give_pages_and_token_scopes() -> None:
    assert roles.ROLES == ("admin", "operator", "auditor", "consent-writer")
    assert {r: roles.pages_of(r) for r in roles.ROLES} == {
        "admin": ("audit", "reports"),
        "operator": (),
        "auditor": ("audit", "reports"),
        "consent-writer": (),
    }
    assert {r: roles.token_scopes(r) for r in roles.ROLES} == {
        "admin": ("consent:read", "consent:write", "portal:recall"),
        "operator": ("portal:recall",),
        "auditor": ("consent:read",),
        "consent-writer": ("consent:read", "consent:write"),
    }
    # Every scope a role gives is one a token can hold.
    for role in roles.ROLES:
        assert tokens.expand_scopes(roles.token_scopes(role)) == tuple(
            sorted(roles.token_scopes(role))
        )
    with pytest.raises(roles.RoleError, match="use one of admin"):
        roles.token_scopes("root")


def test_reviewer_settings_are_checked_with_located_errors(tmp_path: Path) -> None:
    config = tmp_path / "phigate.yaml"
    config.write_text("reviewer:\n  totp_required_roles: [admin, root]\n  idle_minutes: 0\n")
    with pytest.raises(SettingsError) as info:
        load_settings(config)
    assert [str(p).split(": ", 1)[1].split(",")[0] for p in info.value.problems] == [
        'reviewer.totp_required_roles[1]: expected one of "admin"',
        "reviewer.idle_minutes: must be at least 1",
    ]
    assert load_settings(None).reviewer.totp_required_roles == ["admin", "auditor"]


# --- records, lockout, sessions --------------------------------------------------------


def _add(db: Database, name: str = "alice", role: str = "auditor") -> users.User:
    with db.transaction() as conn:
        users.add(conn, name, role, factors.hash_password(PASSWORD), NOW, "cli:admin")
        found = users.get(conn, name)
    assert found is not None
    return found


def _events(db: Database) -> list[tuple[str, str, str | None, str | None, str | None]]:
    c = audit_events.c
    with db.reading() as conn:
        rows = conn.execute(
            select(c.event, c.result, c.principal, c.actor, c.detail).order_by(c.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_every_change_to_a_person_is_audited_with_who_made_it(db: Database) -> None:
    _add(db)
    with db.transaction() as conn:
        users.set_role(conn, "alice", "admin", NOW, "cli:bob")
        users.set_password(conn, "alice", factors.hash_password(PASSWORD + "!"), NOW, "cli:bob")
        users.set_totp(conn, "alice", b"sealed", NOW, "cli:bob")
        users.unlock(conn, "alice", NOW, "cli:bob")
        users.disable(conn, "alice", NOW, "cli:bob")
    assert _events(db) == [
        ("user", "added", "alice", "cli:admin", "role=auditor"),
        ("user", "role_changed", "alice", "cli:bob", "role=admin was=auditor"),
        ("user", "password_changed", "alice", "cli:bob", None),
        ("user", "totp_enrolled", "alice", "cli:bob", None),
        ("user", "unlocked", "alice", "cli:bob", None),
        ("user", "disabled", "alice", "cli:bob", None),
    ]
    with db.reading() as conn:
        alice = users.get(conn, "alice")
    assert alice is not None and alice.role == "admin" and alice.state(NOW) == "disabled"
    assert factors.password_matches(alice.password_hash, PASSWORD + "!")


def test_names_roles_and_duplicates_are_checked(db: Database) -> None:
    _add(db)
    for name, role, error in (
        ("alice", "auditor", "exists already"),
        ("-bad name", "auditor", "not a valid name"),
        ("bob", "root", "unknown role"),
    ):
        # One transaction each, as the CLI runs them: PostgreSQL aborts one after a conflict.
        with pytest.raises((UserError, roles.RoleError), match=error), db.transaction() as conn:
            users.add(conn, name, role, "hash", NOW, "cli:admin")
    with pytest.raises(UserError, match="no person named 'nobody'"), db.transaction() as conn:
        users.set_role(conn, "nobody", "admin", NOW, "cli:admin")
    with db.reading() as conn:
        assert [u.name for u in users.list_all(conn)] == ["alice"]


def test_wrong_attempts_lock_out_and_end_sessions(db: Database) -> None:
    alice = _add(db)
    with db.transaction() as conn:
        secret = sessions.start(conn, alice.id, True, NOW, NOW + 3600)
        untils = [users.failed(conn, alice, "password", 3, 900, "192.0.2.1", NOW) for _ in range(3)]
        locked = users.get(conn, "alice")
        assert sessions.find(conn, secret) is None  # a lockout signs the person out
    assert untils == [None, None, NOW + 900]
    assert locked is not None and locked.locked(NOW) and not locked.locked(NOW + 900)
    assert locked.failed_attempts == 0  # counted again from zero after the lockout
    results = [(e[1], e[3], e[4]) for e in _events(db) if e[0] == "web_sign_in"]
    assert results == [
        ("failed", "web:alice", "wrong password, attempt 1"),
        ("failed", "web:alice", "wrong password, attempt 2"),
        ("failed", "web:alice", "wrong password, attempt 3"),
        ("locked", "web:alice", None),
    ]
    with db.transaction() as conn:
        users.signed_in(conn, alice, "192.0.2.1", NOW + 901)
        assert users.get(conn, "alice").locked_until is None  # type: ignore[union-attr]


def test_a_code_step_is_used_once_even_by_two_requests(db: Database) -> None:
    alice = _add(db)
    with db.transaction() as conn:
        assert users.use_step(conn, alice, 100)
        assert not users.use_step(conn, alice, 100)  # the same code again
        assert not users.use_step(conn, alice, 99)
        assert users.use_step(conn, alice, 101)


def test_sessions_end_when_idle_at_their_lifetime_and_with_a_new_password(db: Database) -> None:
    alice = _add(db)
    with db.transaction() as conn:
        secret = sessions.start(conn, alice.id, True, NOW, NOW + 3600)
        session = sessions.find(conn, secret)
        assert session is not None and session.live(NOW + 599, idle_seconds=600)
        assert not session.live(NOW + 600, idle_seconds=600)  # idle too long
        sessions.touch(conn, session.session_hash, NOW + 3000)
        touched = sessions.find(conn, secret)
        assert touched is not None and touched.live(NOW + 3500, idle_seconds=600)
        assert not touched.live(NOW + 3600, idle_seconds=600)  # the absolute end
        assert secret not in repr(conn.execute(select(web_sessions)).all())  # only its hash
        users.set_password(conn, "alice", factors.hash_password(PASSWORD + "?"), NOW, "cli:a")
        assert sessions.find(conn, secret) is None


# --- the command line ------------------------------------------------------------------


def _cli(config: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "-c", str(config)], input=stdin)
    return result.exit_code, result.output


def test_user_commands_as_an_admin_runs_them(tmp_path: Path, database_url: str) -> None:
    with cli_store(tmp_path, database_url) as (config, _settings, db):
        add = ("user", "add", "alice", "--role", "auditor")
        code, out = _cli(config, *add, "--password-stdin", stdin="short\n")
        assert code == 2 and "use at least 12" in out
        code, out = _cli(config, *add, stdin=f"{PASSWORD}\n{PASSWORD}\n")  # typed twice
        assert code == 0 and "phigate user totp enroll alice" in out  # auditors need TOTP
        code, out = _cli(config, "user", "totp", "enroll", "alice", "--json")
        enrolled = json.loads(out)
        assert code == 0 and enrolled["uri"].startswith("otpauth://totp/phigate:alice?")
        code, out = _cli(config, "user", "totp", "enroll", "alice")
        assert code == 0 and "█" in out and "Secret (shown only now)" in out  # a QR code
        listed = json.loads(_cli(config, "user", "ls", "--json")[1])
        assert [(p["name"], p["role"], p["state"], p["totp"]) for p in listed] == [
            ("alice", "auditor", "active", True)
        ]
        with db.reading() as conn:
            row = conn.execute(select(users_table)).one()
        # Only the hash and the sealed secret are kept.
        assert PASSWORD not in repr(row) and enrolled["secret"].encode() not in row.totp_sealed
        code, out = _cli(config, "user", "disable", "nobody")
        assert code == 2 and "no person named 'nobody'" in out
        assert _cli(config, "user", "role", "alice", "admin")[0] == 0
        assert _cli(config, "user", "unlock", "alice")[0] == 0
        assert _cli(config, "user", "passwd", "alice", "--password-stdin",
                    stdin=PASSWORD + "2\n")[0] == 0  # fmt: skip
        assert _cli(config, "user", "disable", "alice")[0] == 0
        code, out = _cli(config, "user", "ls")
        assert "alice" in out and "admin" in out and "disabled" in out
        with db.reading() as conn:
            actors = conn.execute(
                select(audit_events.c.result, audit_events.c.actor).where(
                    audit_events.c.event == "user"
                )
            ).all()
        assert [r for r, _ in actors] == [
            "added", "totp_enrolled", "totp_enrolled", "role_changed", "unlocked",
            "password_changed", "disabled",
        ]  # fmt: skip
        assert all(a.startswith("cli:") for _, a in actors)
        audited = repr(_events(db))
        assert PASSWORD not in audited and enrolled["secret"] not in audited


def test_a_token_made_with_a_role_gets_its_scopes(tmp_path: Path, database_url: str) -> None:
    with cli_store(tmp_path, database_url) as (config, _settings, db):
        code, out = _cli(config, "token", "add", "siem", "--role", "auditor", "--json")
        assert code == 0 and json.loads(out)["scopes"] == ["consent:read"]
        code, out = _cli(config, "token", "add", "ops", "--role", "operator", "--scope", "consent")
        assert code == 0 and "consent:read, consent:write, portal:recall" in out
        code, out = _cli(config, "token", "add", "none")
        assert code == 2 and "--scope SCOPE or --role ROLE" in out
        with db.reading() as conn:
            assert {t.name: sorted(t.scopes) for t in tokens.list_all(conn)} == {
                "siem": ["consent:read"],
                "ops": ["consent:read", "consent:write", "portal:recall"],
            }
