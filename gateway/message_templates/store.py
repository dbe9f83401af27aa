"""Templates in the database, so every node renders the same one.

A template is kept as the file's text, checked and compiled again when a
process first reads that version (`Stored.template`). Replacing one keeps its
name and counts its version up; the audit trail records each version's
SHA-256, never its variables' values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Connection, delete, insert, select, update

from gateway.message_templates.file import parse
from gateway.message_templates.render import Template, TemplateError
from gateway.store.schema import message_templates

_t = message_templates.c


@dataclass(frozen=True)
class Stored:
    """A template's row: its text, version and who last changed it."""

    name: str
    version: int
    source: str
    sha256: str
    created_at: float
    updated_at: float
    updated_by: str

    def template(self) -> Template:
        """Checked and compiled; once per process for the same text and version."""
        return _parsed(self.source, f"template {self.name} (version {self.version})")


@lru_cache(maxsize=256)
def _parsed(source: str, label: str) -> Template:
    return parse(source, label)  # a TemplateFileError is raised each time, never kept


def digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def _of(row: object) -> Stored:
    r = row._mapping  # type: ignore[attr-defined]
    return Stored(
        r["name"], r["version"], r["source"], r["sha256"], r["created_at"], r["updated_at"],
        r["updated_by"],
    )  # fmt: skip


def get(conn: Connection, name: str) -> Stored | None:
    row = conn.execute(select(message_templates).where(_t.name == name)).first()
    return _of(row) if row is not None else None


def named(conn: Connection, name: str) -> Stored:
    found = get(conn, name)
    if found is None:
        raise TemplateError(f"no template named {name!r}: `phigate template ls` lists them")
    return found


def list_all(conn: Connection) -> list[Stored]:
    return [_of(r) for r in conn.execute(select(message_templates).order_by(_t.name))]


def put(
    conn: Connection, template: Template, source: str, *, replace: bool, actor: str, now: float
) -> Stored:
    """Store a checked template under its name: version 1, or with `replace` the next
    version of the one there; TemplateError if that is not what is there."""
    there = get(conn, template.name)
    values = {"source": source, "sha256": digest(source), "updated_at": now, "updated_by": actor}
    if there is None:
        if replace:
            raise TemplateError(
                f"no template named {template.name!r} to replace: add it without --replace"
            )
        conn.execute(
            insert(message_templates).values(
                name=template.name, version=1, created_at=now, **values
            )
        )
    else:
        if not replace:
            raise TemplateError(
                f"a template named {template.name!r} exists already (version {there.version}): "
                "add --replace to store this file as its next version"
            )
        changed = conn.execute(
            update(message_templates)
            .where(_t.name == template.name, _t.version == there.version)
            .values(version=there.version + 1, **values)
        )
        if changed.rowcount != 1:  # replaced or removed meanwhile by another command
            raise TemplateError(f"template {template.name!r} changed meanwhile: try again")
    return named(conn, template.name)


def remove(conn: Connection, name: str) -> Stored:
    found = named(conn, name)
    conn.execute(delete(message_templates).where(_t.name == name))
    return found
