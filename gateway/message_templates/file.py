"""The template file an admin writes: strict YAML, checked whole, located errors.

```yaml
version: 1
name: appointment-reminder
description: Reminder sent two days before a visit
principals: [ehr1]                 # optional: who may use it (absent: every principal)
subject: Your appointment on {{ day }}
text: |
  Dear {{ patient }}, we expect you on {{ day }} at {{ clinic }}.
html: |
  <p>Dear {{ patient }}, we expect you on {{ day }} at {{ clinic }}.</p>
variables:
  patient: {type: string, phi: true, max_length: 200}
  day: {type: date, format: "%B %d, %Y"}
  clinic: {type: string, default: Main Street Clinic}
```

Every field is compiled in the sandbox (gateway.message_templates.sandbox)
and may refer only to declared variables; every declared variable must be
used. docs/templates.md describes each key.
"""

from __future__ import annotations

import keyword
from typing import Literal

from jinja2 import TemplateSyntaxError, meta
from pydantic import Field, field_validator, model_validator

from gateway.message_templates import sandbox
from gateway.message_templates.render import FIELDS, Template
from gateway.message_templates.values import MAX_ITEMS, MAX_STRING, BadValue, Variable, checked
from gateway.policy.model import Name, StrictModel
from gateway.strict_yaml import YamlDocument, YamlError
from gateway.yaml_models import ModelErrors, ModelSchema, validate_text

MAX_SOURCE = 256 * 1024  # characters of one template file
_RESERVED = frozenset(("loop", "true", "false", "none", "True", "False", "None"))
_JINJA_WORDS = frozenset(("and", "or", "not", "in", "is", "if", "else", "for", "recursive"))


class VariableSpec(StrictModel):
    """One variable as written."""

    type: Literal["string", "integer", "number", "boolean", "date", "email", "enum", "list"]
    required: bool = Field(default=True, description="false, or a default: it may be left out")
    default: object = Field(default=None, description="the value when none is given")
    phi: bool = Field(default=False, description="true: a value makes the message PHI")
    description: str = ""
    max_length: int = Field(default=MAX_STRING, ge=1, le=100_000)
    values: list[str] | None = Field(default=None, description="enum: the values allowed")
    items: Literal["string", "integer", "number", "boolean", "date", "email"] = "string"
    max_items: int = Field(default=MAX_ITEMS, ge=1, le=1000)
    format: str | None = Field(default=None, description='date: e.g. "%B %d, %Y"')

    @model_validator(mode="after")
    def _fits_type(self) -> VariableSpec:
        if self.type == "enum" and not self.values:
            raise ValueError("an enum variable needs values: [first, second, ...]")
        if self.type != "enum" and self.values is not None:
            raise ValueError("values: belongs to an enum variable only (type: enum)")
        if self.format is not None and self.type != "date" and self.items != "date":
            raise ValueError("format: belongs to a date variable only (type: date)")
        return self


class TemplateFile(StrictModel):
    """A message template file, version 1."""

    version: Literal[1]
    name: Name
    description: str = ""
    principals: list[str] | None = Field(default=None, description="who may use it")
    subject: str = Field(description="the Subject, one line")
    text: str | None = Field(default=None, description="the text/plain body")
    html: str | None = Field(default=None, description="the text/html body (autoescaped)")
    variables: dict[str, VariableSpec] = Field(default_factory=dict)

    @field_validator("principals")
    @classmethod
    def _some(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("principals: lists who may use the template; leave it out for all")
        return value


SCHEMA = ModelSchema(TemplateFile, fallback_hint="see docs/templates.md for this key")


class TemplateFileError(ModelErrors):
    """Every problem found in a template file."""


def parse(text: str, source: str) -> Template:
    """Read, check and compile a template file's text; TemplateFileError on any problem."""
    if len(text) > MAX_SOURCE:
        raise TemplateFileError(
            [
                YamlError(
                    source,
                    None,
                    None,
                    f"the file is longer than {MAX_SOURCE} characters",
                    "shorten it: a template is one message",
                )
            ]
        )
    try:
        doc, written = validate_text(
            SCHEMA,
            text,
            source,
            "a template file",
            "settings",
            'start with "version: 1", then name:, subject:, text: and variables:',
        )
    except ModelErrors as exc:
        raise TemplateFileError(exc.problems) from None
    variables, problems = _variables(doc, written)
    sources = {f: getattr(written, f) for f in FIELDS if getattr(written, f) is not None}
    if "text" not in sources and "html" not in sources:
        problems.append(
            doc.error(("subject",), "the template has no body", "add text:, html:, or both")
        )
    compiled, references = {}, {}
    for name, source_text in sources.items():
        try:
            environment = sandbox.HTML if name == "html" else sandbox.TEXT
            tree = environment.parse(source_text)
            sandbox.checked(tree)
            references[name] = frozenset(meta.find_undeclared_variables(tree))
            compiled[name] = environment.from_string(tree)
        except TemplateSyntaxError as exc:
            hint = "correct the Jinja2 syntax there"
            if "No filter named" in str(exc.message):
                hint = "use one of the filters " + ", ".join(sandbox.FILTERS)
            problems.append(_in_field(doc, text, name, exc.lineno, str(exc.message), hint))
        except sandbox.Refused as exc:
            problems.append(_in_field(doc, text, name, exc.line, str(exc), ""))
    problems.extend(_references(doc, written, references, len(references) == len(sources)))
    if problems:
        raise TemplateFileError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))
    return Template(
        name=written.name,
        description=written.description,
        principals=frozenset(written.principals) if written.principals is not None else None,
        sources=sources,
        variables=variables,
        compiled=compiled,
        references=references,
    )


def _in_field(
    doc: YamlDocument, text: str, name: str, line: int | None, message: str, hint: str
) -> YamlError:
    """A problem on `line` of field `name`'s template, located at that line of the file
    (a block scalar, `|`, starts on the line after its key)."""
    mark = doc.mark((name,))
    written = text.splitlines()[mark.line - 1 : mark.line]
    block = bool(written) and written[0][mark.column - 1 :].lstrip().startswith(("|", ">"))
    at = mark.line + (line or 1) - (0 if block else 1)
    return YamlError(doc.source, at, None, message, hint, name)


def _variables(
    doc: YamlDocument, written: TemplateFile
) -> tuple[tuple[Variable, ...], list[YamlError]]:
    made: list[Variable] = []
    problems: list[YamlError] = []
    for name, spec in written.variables.items():
        at = ("variables", name)
        if not name.isidentifier() or keyword.iskeyword(name) or name in _RESERVED | _JINJA_WORDS:
            problems.append(
                doc.error(
                    at,
                    f"{name!r} cannot name a variable",
                    "use letters, digits and _, starting with a letter (e.g. "
                    "patient_name), and not a Jinja2 word such as loop or in",
                    at_key=True,
                )
            )
            continue
        required = spec.required and "default" not in spec.model_fields_set
        if spec.required and {"required", "default"} <= spec.model_fields_set:
            problems.append(
                doc.error(
                    (*at, "default"),
                    "a required variable has no use for a default",
                    "remove default:, or write required: false",
                )
            )
        variable = Variable(
            name=name,
            type=spec.type,
            required=required,
            phi=spec.phi,
            description=spec.description,
            max_length=spec.max_length,
            choices=tuple(spec.values or ()),
            items=spec.items,
            max_items=spec.max_items,
            format=spec.format,
        )
        if spec.default is not None:
            try:
                default = checked(variable, spec.default)
            except BadValue as exc:
                problems.append(
                    doc.error(
                        (*at, "default"),
                        f"the default does not fit: {exc}",
                        f"give {variable.shape}",
                    )
                )
                continue
            variable = Variable(**{**variable.__dict__, "default": default})
        made.append(variable)
    return tuple(made), problems


def _references(
    doc: YamlDocument,
    written: TemplateFile,
    references: dict[str, frozenset[str]],
    complete: bool,
) -> list[YamlError]:
    """Undeclared variables a field uses; declared ones none uses (once every field
    compiled: one that did not has not said what it uses)."""
    declared = set(written.variables)
    problems = []
    for name, used in references.items():
        unknown = sorted(used - declared)
        if unknown:
            problems.append(
                doc.error(
                    (name,),
                    f"refers to undeclared variable(s) {', '.join(unknown)}",
                    "declare each under variables: with its type, or correct the "
                    f"spelling (declared: {', '.join(sorted(declared)) or 'none'})",
                )
            )
    used_anywhere = set().union(*references.values()) if complete else declared
    for name in sorted(declared - used_anywhere):
        problems.append(
            doc.error(
                ("variables", name),
                f"variable {name!r} is declared but no field uses it",
                "use it in subject:, text: or html:, or remove it",
                at_key=True,
            )
        )
    return problems
