"""Message templates: the sandbox refuses escapes, values are typed, html is escaped,
declared PHI makes intake decide a message as PHI, and `phigate template` round-trips
through the store (SQLite, or PostgreSQL in that run)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest
from harness import PHIGATE, free_port, settings_for
from jinja2.exceptions import SecurityError
from stores import accept, cli_store

from gateway import app, datadir
from gateway.config import Settings
from gateway.intake import Submission
from gateway.message_templates import (
    Rendered,
    TemplateError,
    TemplateFileError,
    parse,
    render,
    sandbox,
    values_from_text,
)
from gateway.message_templates import store as templates
from gateway.store.database import Database

CANARY = "Zebulon Quackenbush-7731"  # a value that must reach no error, audit or log

REMINDER = """\
version: 1
name: appointment-reminder
description: Reminder before a visit
principals: [ehr1]
subject: Your visit on {{ day }}
text: |
  Dear {{ patient }},
  we expect you on {{ day }} at {{ clinic }}.
  {% for item in bring %}{{ loop.index }}. {{ item }}
  {% endfor %}{% if seats > 1 %}Seats: {{ seats }}{% endif %}
html: |
  <p>Dear {{ patient }}, see you at {{ clinic }}.</p>
variables:
  patient: {type: string, phi: true, max_length: 100}
  day: {type: date, format: "%B %d, %Y"}
  clinic: {type: string, default: Main Street Clinic}
  bring: {type: list, required: false}
  seats: {type: integer, default: 1}
"""


def _file(text_field: str, variables: str = "  x: {type: string}\n") -> str:
    return (
        f"version: 1\nname: t\nsubject: s {{{{ x }}}}\ntext: {json.dumps(text_field)}\n"
        f"variables:\n{variables}"
    )


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("{{ ''.__class__ }}", "attribute access .__class__"),
        ("{{ x.__init__ }}", "attribute access .__init__"),
        ("{{ x.upper() }}", "calls are not allowed"),
        ("{% include 'secret.txt' %}", "{% include %} is not allowed"),
        ("{% import 'macros' as m %}", "{% import %} is not allowed"),
        ("{% extends 'base' %}", "{% extends %} is not allowed"),
        ("{{ cycler.__init__.__globals__ }}", "attribute access"),
        ("{{ joiner }}", "undeclared variable(s) joiner"),
        ("{{ namespace() }}", "calls are not allowed"),
        ("{{ x['__class__'] }}", "only a list's item by number"),
        ("{{ x | attr('__class__') }}", "No filter named 'attr'"),
        ("{{ x | join(attribute='__class__') }}", "attribute= is not allowed"),
        ("{{ x | sum('__class__') }}", "attribute= is not allowed"),
        ("{{ x | sort(false, false, '__class__') }}", "attribute= is not allowed"),
        ("{% set y = x %}{{ y }}", "{% set %} is not allowed"),
        ("{% autoescape false %}{{ x }}{% endautoescape %}", "{% autoescape %} is not allowed"),
        ("{{ x | safe }}", "No filter named 'safe'"),
        ("{{ lipsum(10**9) }}", "calls are not allowed"),
    ],
)
def test_what_could_escape_the_sandbox_is_refused_when_added(body: str, named: str) -> None:
    with pytest.raises(TemplateFileError) as refused:
        parse(_file(body), "escape.yaml")
    message = str(refused.value)
    assert "escape.yaml:4" in message and "text:" in message and named in message


def test_the_sandbox_itself_refuses_attributes_and_repetition_at_render() -> None:
    # What the check at add time would refuse, the environment refuses too.
    with pytest.raises(SecurityError):
        sandbox.TEXT.from_string("{{ x.__class__.__mro__ }}").render(x="a")
    with pytest.raises(SecurityError):
        sandbox.TEXT.from_string("{{ x * 100000000 }}").render(x="a")
    with pytest.raises(SecurityError):
        sandbox.TEXT.from_string("{{ x | replace('a', y) }}").render(x="a" * 5000, y="b" * 5000)
    with pytest.raises(SecurityError):
        sandbox.TEXT.from_string("{{ x | sum('__class__') }}").render(x=["a"])
    assert sandbox.TEXT.from_string("{{ n * 3 }}").render(n=2) == "6"


def _reminder(**values: object) -> Rendered:
    given: Mapping[str, object] = {"patient": CANARY, "day": "2026-03-01", **values}
    return render(parse(REMINDER, "reminder.yaml"), given)


def test_render_types_defaults_phi_and_escaping() -> None:
    out = _reminder(patient="<b>Ann</b>\r\nBcc: x@evil.example", bring=["card", "list"], seats=2)
    assert out.subject == "Your visit on March 01, 2026"
    assert out.text is not None and "1. card\n2. list" in out.text and "Seats: 2" in out.text
    assert "Main Street Clinic" in out.text and "<b>Ann</b>" in out.text  # text is not html
    assert out.html is not None and "&lt;b&gt;Ann&lt;/b&gt;" in out.html and "<b>" not in out.html
    assert out.phi_variables == ("patient",) and not out.phi_in_subject
    assert out.declared_phi is not None and out.declared_phi.variables == ("patient",)
    # A value in the subject is folded onto its one line.
    tpl = parse(_file("{{ x }}", "  x: {type: string, phi: true}\n"), "t.yaml")
    subject = render(tpl, {"x": "a\r\nBcc: x@evil.example"})
    assert subject.subject == "s a Bcc: x@evil.example" and subject.phi_in_subject


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"patient": 12}, ["'patient'", "expected text, got a number"]),
        ({"day": "03/01/2026"}, ["'day'", "YYYY-MM-DD"]),
        ({"seats": "2"}, ["'seats'", "expected a whole number, got text"]),
        ({"seats": True}, ["'seats'", "expected a whole number"]),
        ({"bring": CANARY}, ["'bring'", "expected a list of string"]),
        ({"patient": CANARY * 10}, ["'patient'", "at most 100 characters"]),
        ({"doctor": CANARY}, ["no variable 'doctor'", "it declares patient, day"]),
        ({"day": None}, ["'day'", "is required but was not given"]),
    ],
)
def test_wrong_values_are_refused_naming_the_variable_never_the_value(
    values: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(TemplateError) as refused:
        _reminder(**values)
    message = str(refused.value)
    assert all(w in message for w in words), message
    assert "appointment-reminder" in message and CANARY not in message


def test_only_the_listed_principals_may_use_a_template() -> None:
    tpl = parse(REMINDER, "reminder.yaml")
    tpl.usable_by("ehr1")
    with pytest.raises(TemplateError, match="not for principal ehr2: it lists ehr1"):
        tpl.usable_by("ehr2")
    parse(REMINDER.replace("principals: [ehr1]\n", ""), "all.yaml").usable_by("ehr2")


def test_command_line_text_is_read_as_each_type() -> None:
    tpl = parse(REMINDER, "reminder.yaml")
    read = values_from_text(tpl, {"seats": "3", "bring": '["a"]', "patient": "Ann"})
    assert read == {"seats": 3, "bring": ["a"], "patient": "Ann"}
    with pytest.raises(TemplateError, match=r"'seats'.*write a whole number"):
        values_from_text(tpl, {"seats": "three"})


def test_file_errors_name_the_line_the_field_and_the_fix() -> None:
    with pytest.raises(TemplateFileError) as refused:
        parse(
            "version: 1\nname: t\nsubject: Hi {{ nmae }}\ntext: '{{ name }}'\nvariables:\n"
            "  name: {type: string}\n  unused: {type: integer, default: many}\n",
            "bad.yaml",
        )
    message = str(refused.value)
    assert "bad.yaml:3" in message and "subject: refers to undeclared variable(s) nmae" in message
    assert "Fix: declare each under variables:" in message
    assert "bad.yaml:7" in message and "the default does not fit" in message


def test_output_and_work_are_bounded() -> None:
    tpl = parse(
        _file(
            "{% for a in x %}{% for b in x %}{{ y }}{% endfor %}{% endfor %}",
            "  x: {type: list, max_items: 1000}\n  y: {type: string, max_length: 100000}\n",
        ).replace("s {{ x }}", "s"),
        "big.yaml",
    )
    with pytest.raises(TemplateError, match="longer than"):
        render(tpl, {"x": ["a"] * 1000, "y": "b" * 1000})
    busy = parse(
        _file("{% for a in x %}{% for b in x %}{% if x | sort | first %}{% endif %}{% endfor %}"
              "{% endfor %}", "  x: {type: list, max_items: 1000}\n").replace("s {{ x }}", "s"),
        "busy.yaml",
    )  # fmt: skip
    with pytest.raises(TemplateError, match="more than 100000 list items"):
        render(busy, {"x": [str(n) for n in range(1000)]})
    assert render(busy, {"x": ["a", "b"]}).text == ""


def test_store_versions_and_removes(db: Database) -> None:
    tpl = parse(REMINDER, "reminder.yaml")
    with db.transaction() as conn:
        first = templates.put(conn, tpl, REMINDER, replace=False, actor="cli:t", now=1.0)
        with pytest.raises(TemplateError, match=r"exists already.*--replace"):
            templates.put(conn, tpl, REMINDER, replace=False, actor="cli:t", now=2.0)
        second = templates.put(conn, tpl, REMINDER + "\n", replace=True, actor="cli:u", now=3.0)
    assert (first.version, second.version) == (1, 2)
    assert second.created_at == 1.0 and second.updated_by == "cli:u"
    with db.reading() as conn:
        again = templates.named(conn, "appointment-reminder").template()
    assert again.phi_variables == ("patient",) and again.principals == frozenset({"ehr1"})
    with db.transaction() as conn:
        templates.remove(conn, "appointment-reminder")
        assert templates.list_all(conn) == []
        with pytest.raises(TemplateError, match="no template named"):
            templates.remove(conn, "appointment-reminder")


def _phigate(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PHIGATE, "template", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_round_trip(tmp_path: Path, database_url: str) -> None:
    source = tmp_path / "reminder.yaml"
    source.write_text(REMINDER)
    with cli_store(tmp_path, database_url) as (config, _settings, db):
        added = _phigate(config, "add", str(source))
        assert added.returncode == 0, added.stderr
        assert "version 1" in added.stdout and "PHI variables: patient" in added.stdout
        again = _phigate(config, "add", str(source))
        assert again.returncode == 2 and "--replace" in again.stderr
        assert _phigate(config, "add", str(source), "--replace").returncode == 0
        listed = json.loads(_phigate(config, "ls", "--json").stdout)
        assert [(t["name"], t["version"], t["phi_variables"]) for t in listed] == [
            ("appointment-reminder", 2, ["patient"])
        ]
        shown = json.loads(_phigate(config, "show", "appointment-reminder", "--json").stdout)
        assert shown["source"] == REMINDER and shown["principals"] == ["ehr1"]
        tested = _phigate(
            config, "test", "appointment-reminder", "--var", f"patient={CANARY}",
            "--var", "day=2026-03-01", "--var", "seats=2",
        )  # fmt: skip
        assert tested.returncode == 0, tested.stderr
        assert f"Dear {CANARY}," in tested.stdout and "Seats: 2" in tested.stdout
        assert "PHI: yes, declared by patient" in tested.stdout
        wrong = _phigate(config, "test", "appointment-reminder", "--var", "seats=lots")
        assert wrong.returncode == 2 and "'seats'" in wrong.stderr
        assert "Traceback" not in wrong.stderr
        bad = tmp_path / "bad.yaml"
        bad.write_text(REMINDER.replace("{{ clinic }}.", "{{ clinic.__class__ }}."))
        refused = _phigate(config, "add", str(bad), "--replace")
        assert refused.returncode == 2 and "bad.yaml:8" in refused.stderr
        assert "attribute access .__class__" in refused.stderr
        assert _phigate(config, "rm", "appointment-reminder").returncode == 0
        gone = _phigate(config, "show", "appointment-reminder")
        assert gone.returncode == 2 and "no template named" in gone.stderr
        with db.reading() as conn:
            trail = conn.exec_driver_sql(
                "SELECT result, detail FROM audit_events WHERE event = 'template' ORDER BY id"
            ).all()
    assert [r.result for r in trail] == ["added", "replaced", "tested", "removed"]
    assert all(CANARY not in (r.detail or "") for r in trail)


# -- declared PHI through intake, with the default policy ---------------------------------


def _settings(tmp_path: Path) -> Settings:
    settings = Settings.model_validate(settings_for(tmp_path / "data", free_port()))
    datadir.prepare_data_dir(settings, generate_cert=True)
    return settings


def _submission(rendered: Rendered, declare: bool) -> Submission:
    content = (
        f"From: clinic@clinic.example.org\r\nTo: b@partner.test\r\nSubject: {rendered.subject}"
        f"\r\n\r\n{rendered.text}"
    ).encode()
    return Submission(
        listener="api",
        principal="ehr1",
        client_ip="127.0.0.1",
        helo=None,
        tls=True,
        authenticated=True,
        sender="clinic@clinic.example.org",
        recipients=("b@partner.test",),
        content=content,
        declared_phi=rendered.declared_phi if declare else None,
    )


def test_declared_phi_is_decided_as_phi_even_when_nothing_is_detected(tmp_path: Path) -> None:
    tpl = parse(
        "version: 1\nname: note\nsubject: A note\ntext: 'Reference {{ ref }}. Thank you.'\n"
        "variables:\n  ref: {type: string, phi: true}\n",
        "note.yaml",
    )
    rendered = render(tpl, {"ref": "blue"})  # nothing any detector calls PHI
    parts = app.build(_settings(tmp_path))
    try:
        for declare in (True, False):
            assert accept(parts, _submission(rendered, declare)).startswith("250 ")
        with parts.db.reading() as conn:
            decided = conn.exec_driver_sql(
                "SELECT detail FROM audit_events WHERE event = 'policy' ORDER BY id"
            ).all()
            routes = conn.exec_driver_sql("SELECT route FROM jobs ORDER BY id").scalars().all()
    finally:
        parts.close()
    declared, undeclared = (r.detail for r in decided)
    assert "rule=phi-verified-tls-or-portal" in declared and "phi=yes declared=1" in declared
    assert "rule=no-phi-standard-delivery" in undeclared and "phi=no" in undeclared
    assert routes == ["tls,portal", "standard"]
