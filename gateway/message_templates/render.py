"""A checked template, and rendering it with a sender's values (pure).

`render(template, variables)` checks every value against its declared type,
fills in defaults, and renders the subject, text and html in the sandbox
(html with autoescaping), each bounded in length. Errors name the template,
the variable or field, and the fix; they never hold a value, which may be PHI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from jinja2 import Template as Compiled
from jinja2.exceptions import TemplateError as JinjaError

from gateway.inspect.findings import DeclaredPhi
from gateway.message_templates import sandbox, values
from gateway.message_templates.values import BadValue, Variable

FIELDS = ("subject", "text", "html")
MAX_SUBJECT = 998  # one header line


class TemplateError(Exception):
    """A template that cannot be used or rendered as asked: what, where, and the fix."""


@dataclass(frozen=True)
class Template:
    """A template as added: its checked fields, compiled, and its variables."""

    name: str
    description: str
    principals: frozenset[str] | None  # who may use it; None: every principal
    sources: Mapping[str, str]  # field -> Jinja source, for the fields it has
    variables: tuple[Variable, ...]
    compiled: Mapping[str, Compiled] = field(repr=False, compare=False)
    # field -> the variables its source refers to
    references: Mapping[str, frozenset[str]] = field(compare=False)

    @property
    def phi_variables(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables if v.phi)

    def variable(self, name: str) -> Variable | None:
        return next((v for v in self.variables if v.name == name), None)

    def usable_by(self, principal: str | None) -> None:
        """TemplateError unless `principal` may send with this template."""
        if self.principals is None or principal in self.principals:
            return
        raise TemplateError(
            f"template {self.name!r} is not for principal {principal or '(none)'}: it lists "
            f"{', '.join(sorted(self.principals))}; add the principal to its principals: and "
            f"`phigate template add FILE --replace`"
        )


@dataclass(frozen=True)
class Rendered:
    """A rendered message's parts (None: the template has no such field) and the names
    of the PHI variables that were given a value."""

    subject: str
    text: str | None
    html: str | None
    phi_variables: tuple[str, ...]
    phi_in_subject: bool = False

    @property
    def declared_phi(self) -> DeclaredPhi | None:
        """What intake must treat as PHI whatever inspection finds (Submission.declared_phi)."""
        if not self.phi_variables:
            return None
        return DeclaredPhi(self.phi_variables, self.phi_in_subject)


def render(template: Template, variables: Mapping[str, object]) -> Rendered:
    """The message `template` makes of `variables`; TemplateError if a value is missing,
    unknown or of the wrong type, or the result is too long."""
    context = _context(template, variables)
    steps = sandbox.Steps()  # shared by the fields: one render's work is bounded
    bounded = {
        k: sandbox.Counted(v, steps) if isinstance(v, list) else v for k, v in context.items()
    }
    out = {name: _field(template, name, bounded) for name in template.compiled}
    given = {name for name, value in context.items() if value not in (None, [])}
    phi = tuple(name for name in template.phi_variables if name in given)
    in_subject = bool(template.references.get("subject", frozenset()) & set(phi))
    subject = " ".join(out["subject"].split())  # one line: a value never adds a header
    if len(subject) > MAX_SUBJECT:
        raise TemplateError(
            f"template {template.name!r}: the rendered subject is longer than {MAX_SUBJECT} "
            "characters; shorten the subject or the values in it"
        )
    return Rendered(subject, out.get("text"), out.get("html"), phi, in_subject)


def values_from_text(template: Template, pairs: Mapping[str, str]) -> dict[str, object]:
    """Values typed as text (`--var name=text`) read as each variable's type."""
    read: dict[str, object] = {}
    for name, text in pairs.items():
        variable = _declared(template, name)
        try:
            read[name] = values.from_text(variable, text)
        except BadValue as exc:
            raise TemplateError(_about(template, variable, str(exc))) from None
    return read


def _declared(template: Template, name: str) -> Variable:
    variable = template.variable(name)
    if variable is None:
        declared = ", ".join(v.name for v in template.variables) or "(none)"
        raise TemplateError(
            f"template {template.name!r} has no variable {name!r}: it declares {declared}; "
            "leave it out, or declare it in the template's variables:"
        )
    return variable


def _about(template: Template, variable: Variable, problem: str) -> str:
    return f"template {template.name!r}, variable {variable.name!r} ({variable.shape}): {problem}"


def _context(template: Template, given: Mapping[str, object]) -> dict[str, object]:
    for name in given:
        _declared(template, name)
    context: dict[str, object] = {}
    for variable in template.variables:
        if variable.name in given and given[variable.name] is not None:
            try:
                context[variable.name] = values.checked(variable, given[variable.name])
            except BadValue as exc:
                raise TemplateError(
                    _about(template, variable, f"{exc}; give {variable.shape}")
                ) from None
        elif variable.required:
            raise TemplateError(
                _about(template, variable, "is required but was not given; give a value")
            )
        else:  # an optional list given nothing is empty, so a for loop runs no times
            empty: list[object] | None = [] if variable.type == "list" else None
            context[variable.name] = variable.default if variable.default is not None else empty
    return context


def _field(template: Template, name: str, context: Mapping[str, object]) -> str:
    size = 0
    parts = []
    try:
        for chunk in template.compiled[name].generate(context):
            size += len(chunk)
            if size > sandbox.MAX_OUTPUT:
                raise TemplateError(
                    f"template {template.name!r}: the rendered {name} is longer than "
                    f"{sandbox.MAX_OUTPUT} characters; shorten the template or the values"
                )
            parts.append(chunk)
    except TemplateError:
        raise
    except JinjaError as exc:  # names a variable or construct, never a value
        raise TemplateError(
            f"template {template.name!r}: {name} could not be rendered: {exc.message}; "
            "check the template with `phigate template test`"
        ) from None
    except Exception as exc:  # an operation on values: its message may show them
        raise TemplateError(
            f"template {template.name!r}: {name} could not be rendered "
            f"({type(exc).__name__} in an expression); check the types of the values the "
            "expressions there combine"
        ) from None
    return "".join(parts)
