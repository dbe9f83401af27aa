"""`phigate template`: admin-managed message templates (docs/templates.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from sqlalchemy import Connection

from gateway.audit import trail
from gateway.audit.trail import AuditEvent
from gateway.cli.common import (
    EXIT_USAGE,
    cli_actor,
    cli_settings,
    config_options,
    fail,
    open_store,
    print_json,
    when,
)
from gateway.message_templates import Template, TemplateError, TemplateFileError, parse, render
from gateway.message_templates import store as templates
from gateway.message_templates.render import values_from_text
from gateway.strict_yaml import YamlError
from gateway.yaml_models import read_text

AUDIT_EVENT = "template"


@click.group("template")
def template_group() -> None:
    """Message templates a sending system renders by name, with its own values.

    A template file (YAML) holds a subject, a text and/or html body in Jinja2,
    and typed variables; variables marked phi: true make every message
    rendered with a value for them PHI to the policy, whatever inspection
    finds. Templates run in a sandbox: plain values, filters, if and for; no
    attribute access, includes or imports. `add` checks and compiles the file
    and stores it in the database, for every node.

    \b
      phigate template add reminder.yaml            # checked, stored as version 1
      phigate template add reminder.yaml --replace  # the next version
      phigate template ls
      phigate template show appointment-reminder
      phigate template test appointment-reminder --var patient='Ann Lee' --var day=2026-03-01
      phigate template rm appointment-reminder

    The file's keys and the sandbox's rules: docs/templates.md.
    """


def _audit(conn: Connection, result: str, detail: str) -> None:
    trail.append(conn, [AuditEvent(AUDIT_EVENT, result, detail=detail[:255], actor=cli_actor())])


def _read(path: str) -> tuple[Template, str]:
    try:
        source = read_text(Path(path), "template file")
        return parse(source, path), source
    except YamlError as exc:
        fail(str(exc), EXIT_USAGE)
    except TemplateFileError as exc:
        fail(f"template file {path} has problems:\n{exc}", EXIT_USAGE)


@template_group.command("add")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--replace", is_flag=True, help="Store FILE as the next version of its template.")
@config_options
def template_add(file: str, replace: bool, config_file: str | None, data_dir: str | None) -> None:
    """Check FILE, compile it in the sandbox and store it under its name.

    Every field must compile, refer only to declared variables and use every
    one; defaults must fit their types. A name in use needs --replace, which
    stores the file as the template's next version.
    """
    settings = cli_settings(config_file, data_dir)
    template, source = _read(file)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                stored = templates.put(
                    conn, template, source, replace=replace, actor=cli_actor(), now=time.time()
                )
                _audit(
                    conn,
                    "replaced" if replace else "added",
                    f"name={stored.name} version={stored.version} sha256={stored.sha256} "
                    f"phi_variables={len(template.phi_variables)}",
                )
        except TemplateError as exc:
            fail(str(exc), EXIT_USAGE)
    phi = ", ".join(template.phi_variables) or "none"
    click.echo(
        f"Template {stored.name!r} stored as version {stored.version} (PHI variables: {phi})."
    )


def _summary(stored: templates.Stored, template: Template) -> dict[str, object]:
    return {
        "name": stored.name,
        "version": stored.version,
        "description": template.description,
        "principals": sorted(template.principals) if template.principals is not None else None,
        "fields": list(template.sources),
        "variables": [
            {
                "name": v.name,
                "type": v.type,
                "shape": v.shape,
                "required": v.required,
                "default": v.default,
                "phi": v.phi,
                "description": v.description,
            }
            for v in template.variables
        ],
        "phi_variables": list(template.phi_variables),
        "sha256": stored.sha256,
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
        "updated_by": stored.updated_by,
    }


def _checked(stored: templates.Stored) -> Template:
    try:
        return stored.template()
    except TemplateFileError as exc:  # stored by a version whose rules were looser
        fail(
            f"template {stored.name!r} no longer passes the checks:\n{exc}\nFix the file and "
            "`phigate template add FILE --replace`"
        )


@template_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@config_options
def template_ls(as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """List templates: version, variables, PHI variables and who may use them."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        stored = templates.list_all(conn)
    listed = [(s, _checked(s)) for s in stored]
    if as_json:
        print_json([_summary(s, t) for s, t in listed])
        return
    if not listed:
        click.echo("No templates (add one with `phigate template add FILE`).")
        return
    click.echo(f"{'NAME':<28} {'VER':>4} {'UPDATED':<19}  {'PRINCIPALS':<16} VARIABLES (PHI*)")
    for s, t in listed:
        names = ", ".join(v.name + ("*" if v.phi else "") for v in t.variables)
        who = ",".join(sorted(t.principals)) if t.principals is not None else "all"
        click.echo(f"{s.name:<28} {s.version:>4} {when(s.updated_at):<19}  {who:<16} {names}")


@template_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, with the file's text.")
@config_options
def template_show(name: str, as_json: bool, config_file: str | None, data_dir: str | None) -> None:
    """Show template NAME: its variables and types, then the file as stored."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db, db.reading() as conn:
        try:
            stored = templates.named(conn, name)
        except TemplateError as exc:
            fail(str(exc), EXIT_USAGE)
    template = _checked(stored)
    if as_json:
        print_json({**_summary(stored, template), "source": stored.source})
        return
    click.echo(
        f"Template {stored.name!r}, version {stored.version}, updated "
        f"{when(stored.updated_at)} by {stored.updated_by}"
    )
    if template.description:
        click.echo(f"  {template.description}")
    who = ", ".join(sorted(template.principals)) if template.principals is not None else "all"
    click.echo(f"Principals: {who}")
    click.echo("Variables:")
    for v in template.variables:
        need = "required" if v.required else "optional"
        if v.default is not None:
            need += f", default {json.dumps(v.default)}"
        click.echo(f"  {v.name}: {v.shape}, {need}{', PHI' if v.phi else ''}")
    click.echo(f"--- file (sha256 {stored.sha256}) ---")
    click.echo(stored.source.rstrip("\n"))


def _given(template: Template, pairs: tuple[str, ...], vars_file: str | None) -> dict[str, object]:
    given: dict[str, object] = {}
    if vars_file is not None:
        try:
            loaded = json.loads(Path(vars_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            fail(
                f"--vars-file {vars_file}: cannot read it as JSON ({type(exc).__name__}); "
                'write an object, e.g. {"patient": "Ann Lee", "day": "2026-03-01"}',
                EXIT_USAGE,
            )
        if not isinstance(loaded, dict):
            fail(
                f'--vars-file {vars_file}: write a JSON object, e.g. {{"day": "2026-03-01"}}',
                EXIT_USAGE,
            )
        given.update(loaded)
    typed: dict[str, str] = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        if not eq or not key:
            fail(f"--var {key or pair!r}: write NAME=VALUE, e.g. --var day=2026-03-01", EXIT_USAGE)
        typed[key] = text
    given.update(values_from_text(template, typed))
    return given


@template_group.command("test")
@click.argument("name")
@click.option(
    "--var",
    "pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A variable's value; a list as JSON. Repeat for each variable.",
)
@click.option(
    "--vars-file",
    type=click.Path(dir_okay=False),
    help="A JSON object of values, typed (--var overrides it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the rendered message as JSON.")
@config_options
def template_test(
    name: str,
    pairs: tuple[str, ...],
    vars_file: str | None,
    as_json: bool,
    config_file: str | None,
    data_dir: str | None,
) -> None:
    """Render template NAME with the values given and print the message, and which
    of its variables make it PHI. Nothing is sent; the values are not recorded."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        with db.reading() as conn:
            try:
                stored = templates.named(conn, name)
            except TemplateError as exc:
                fail(str(exc), EXIT_USAGE)
        template = _checked(stored)
        try:
            rendered = render(template, _given(template, pairs, vars_file))
        except TemplateError as exc:
            fail(str(exc), EXIT_USAGE)
        with db.transaction() as conn:
            _audit(conn, "tested", f"name={name} version={stored.version}")
    if as_json:
        print_json(
            {
                "template": name,
                "version": stored.version,
                "subject": rendered.subject,
                "text": rendered.text,
                "html": rendered.html,
                "phi_variables": list(rendered.phi_variables),
                "phi_in_subject": rendered.phi_in_subject,
            }
        )
        return
    click.echo(f"Subject: {rendered.subject}")
    for part, body in (("text", rendered.text), ("html", rendered.html)):
        if body is not None:
            click.echo(f"--- {part} ---")
            click.echo(body.rstrip("\n"))
    click.echo("---")
    if rendered.phi_variables:
        where = " (one is in the subject)" if rendered.phi_in_subject else ""
        click.echo(
            f"PHI: yes, declared by {', '.join(rendered.phi_variables)}{where}: the policy "
            "decides this message as carrying PHI"
        )
    else:
        click.echo("PHI: none declared; inspection decides")


@template_group.command("rm")
@click.argument("name")
@config_options
def template_rm(name: str, config_file: str | None, data_dir: str | None) -> None:
    """Remove template NAME; messages sent with it are not affected."""
    settings = cli_settings(config_file, data_dir)
    with open_store(settings) as db:
        try:
            with db.transaction() as conn:
                gone = templates.remove(conn, name)
                _audit(conn, "removed", f"name={name} version={gone.version}")
        except TemplateError as exc:
            fail(str(exc), EXIT_USAGE)
    click.echo(f"Template {name!r} removed.")
