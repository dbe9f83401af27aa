"""A phigate server with its web app on a free loopback port, and what tests do with it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import Phigate, free_port

from gateway.app import unsubscribe_links
from gateway.config import Settings
from gateway.consent import registry
from gateway.consent.links import UnsubscribeLinks
from gateway.settings_loader import load_settings
from gateway.store.audit_key import load_audit_key
from gateway.store.database import Database
from gateway.web import factors, tokens, users

PURPOSES = {
    "flu-clinic": {"description": "Flu clinic invitations"},
    "sponsored": {"description": "Sponsored offers", "remunerated": True},
}


def web_gate(tmp: Path, **sections: Any) -> Phigate:
    """A phigate (not started) whose web app listens on a free port of 127.0.0.1."""
    web = {"address": f"127.0.0.1:{free_port()}", **sections.pop("web", {})}
    sections.setdefault("consent", {"purposes": PURPOSES})
    return Phigate(tmp, web=web, **sections)


def base_url(gw: Phigate) -> str:
    scheme = "https" if gw.settings["web"].get("tls") else "http"
    return f"{scheme}://{gw.settings['web']['address']}"


def settings_of(gw: Phigate) -> Settings:
    return load_settings(gw.config)


def add_token(gw: Phigate, name: str, *scopes: str) -> str:
    """A new API token's secret (made in the store directly: quicker than the CLI)."""
    with store(gw) as db, db.transaction() as conn:
        return tokens.add(conn, name, scopes, time.time(), "cli:test")


def add_person(gw: Phigate, name: str, role: str, password: str, totp: bool) -> str | None:
    """A person for the reviewer's pages, as `phigate user add` and `user totp enroll`
    make one; their TOTP secret when enrolled."""
    settings = settings_of(gw)
    key = factors.web_key(settings.path(settings.keys_dir))
    enrolment = factors.new_totp(name)
    with store(gw) as db, db.transaction() as conn:
        users.add(conn, name, role, factors.hash_password(password), time.time(), "cli:test")
        if totp:
            sealed = factors.seal_totp(key, name, enrolment.secret)
            users.set_totp(conn, name, sealed, time.time(), "cli:test")
    return enrolment.secret if totp else None


def links(gw: Phigate) -> UnsubscribeLinks:
    """Links made as the mail path makes them: same settings, same key file."""
    return unsubscribe_links(settings_of(gw))


def local_path(url: str) -> str:
    """The path of a link (it names the public address, not this test server)."""
    return "/" + url.split("/", 3)[3]


@contextmanager
def store(gw: Phigate) -> Iterator[Database]:
    settings = settings_of(gw)
    key = load_audit_key(settings.path(settings.keys_dir))
    db = Database(f"sqlite:///{gw.db_path}", audit_key=key)
    try:
        yield db
    finally:
        db.close()


def history(gw: Phigate, address: str) -> list[dict[str, Any]]:
    with store(gw) as db, db.reading() as conn:
        return registry.history(conn, address=address)


def state(gw: Phigate, address: str, purpose: str = "marketing") -> str:
    settings = settings_of(gw)
    with store(gw) as db, db.reading() as conn:
        return registry.states(conn, [address], purpose, time.time(), settings.consent)[address]
