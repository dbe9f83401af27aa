"""The Jinja2 sandbox message templates are compiled and rendered in.

A template sees plain values only (text, numbers, truth values, lists of
them): no loader (no include, import or extends), no globals, no attribute
access except `loop.index` and its kin inside a for loop, no calls, no
`{% set %}`, macros or autoescape switches, for loops at most two deep, a
short list of filters, and no repetition of text by `*`. What a template
may not do is refused when it is added (`checked`), naming the construct
and the fix; rendering runs in the same sandbox, so a template that slipped
past the check still reaches nothing.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

# What a for loop's `loop` may show.
LOOP_ATTRIBUTES = frozenset(("index", "index0", "revindex", "revindex0", "first", "last", "length"))
MAX_LOOP_DEPTH = 2
MAX_EXPONENT = 64
# The filters a template may use (Jinja's own, but `replace`, bounded here).
FILTERS = (
    "abs", "capitalize", "count", "d", "default", "e", "escape", "first", "float", "int",
    "join", "last", "length", "list", "lower", "max", "min", "replace", "reverse", "round",
    "sort", "string", "striptags", "sum", "title", "trim", "truncate", "unique", "upper",
    "urlencode", "wordcount", "wordwrap",
)  # fmt: skip
# Filters whose `attribute` argument may also be given in place: its position after the value.
_ATTRIBUTE_AT = {"sum": 0, "join": 1, "unique": 1, "min": 1, "max": 1, "sort": 2}
# Longer text than this, from one filter or one field, is refused.
MAX_OUTPUT = 256 * 1024
# List items one render may go through, in every loop and filter of every field together.
MAX_STEPS = 100_000

_ALLOWED = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Const, nodes.Name, nodes.If,
    nodes.For, nodes.Filter, nodes.Test, nodes.CondExpr, nodes.And, nodes.Or, nodes.Not,
    nodes.Compare, nodes.Operand, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div,
    nodes.FloorDiv, nodes.Mod, nodes.Neg, nodes.Pos, nodes.Pow, nodes.Concat, nodes.List,
    nodes.Tuple, nodes.Keyword, nodes.Getattr, nodes.Getitem,
)  # fmt: skip
_STATEMENTS: dict[type[nodes.Node], str] = {
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Extends: "{% extends %}",
    nodes.Block: "{% block %}",
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
    nodes.Assign: "{% set %}",
    nodes.AssignBlock: "{% set %}",
    nodes.FilterBlock: "{% filter %}",
    nodes.With: "{% with %}",
    nodes.Scope: "{% autoescape %}",
    nodes.ScopedEvalContextModifier: "{% autoescape %}",
    nodes.EvalContextModifier: "{% autoescape %}",
}


class Refused(Exception):
    """What a template may not do, and what to write instead; `line` is the template's."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def _replace(value: object, old: str, new: str, count: int | None = None) -> str:
    text, old, new = str(value), str(old), str(new)
    if not old:
        raise SecurityError("replace needs text to look for (an empty first argument)")
    times = text.count(old) if count is None else min(count, text.count(old))
    if len(text) + times * (len(new) - len(old)) > MAX_OUTPUT:
        raise SecurityError(f"replace would make more than {MAX_OUTPUT} characters")
    return text.replace(old, new, -1 if count is None else count)


def _finalize(value: object) -> object:
    """An optional variable given no value prints as nothing."""
    return "" if value is None else value


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with everything a message template needs not taken out."""

    intercepted_binops = frozenset(("*", "**"))

    def __init__(self, *, html: bool) -> None:
        super().__init__(
            loader=None,
            autoescape=html,
            undefined=StrictUndefined,
            finalize=_finalize,
            keep_trailing_newline=True,
        )
        self.globals.clear()
        kept: dict[str, Callable[..., Any]] = {name: self.filters[name] for name in FILTERS}
        kept["replace"] = _replace
        self.filters = kept

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return isinstance(obj, LoopContext) and attr in LOOP_ATTRIBUTES

    def is_safe_callable(self, obj: Any) -> bool:
        return False

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "*":
            if not (_number(left) and _number(right)):
                raise SecurityError("`*` multiplies numbers only: text and lists are not repeated")
            return operator.mul(left, right)
        if not (_number(left) and _number(right)) or abs(right) > MAX_EXPONENT:
            raise SecurityError(f"`**` takes numbers and an exponent of at most {MAX_EXPONENT}")
        return operator.pow(left, right)


class Steps:
    """What is left of one render's `MAX_STEPS`."""

    def __init__(self, limit: int = MAX_STEPS) -> None:
        self.left = limit

    def take(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise SecurityError(
                f"the template went through more than {MAX_STEPS} list items (loops within "
                "loops, or filters such as sort inside a loop): loop over the lists less"
            )


class Counted(list[object]):
    """A list variable: every item a loop or filter takes from it costs a step."""

    def __init__(self, items: list[object], steps: Steps) -> None:
        super().__init__(items)
        self.steps = steps

    def __iter__(self) -> Iterator[object]:
        for item in super().__iter__():
            self.steps.take()
            yield item


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


TEXT = Sandbox(html=False)
HTML = Sandbox(html=True)


def checked(tree: nodes.Template) -> None:
    """Refused if the parsed template does anything but print, test and loop over values."""
    for node, depth in _walk(tree, 0):
        if isinstance(node, tuple(_STATEMENTS)):
            statement = _STATEMENTS[type(node)]
            raise Refused(
                f"{statement} is not allowed: a message template is one "
                "text of {{ variables }}, filters, {% if %} and {% for %}; write the text out "
                "in this field instead",
                node.lineno,
            )
        if isinstance(node, nodes.Call):
            raise Refused(
                "calls are not allowed: variables are plain values; use a "
                f"filter instead, e.g. {{{{ name | upper }}}} (filters: {', '.join(FILTERS)})",
                node.lineno,
            )
        if isinstance(node, nodes.Getattr) and not _loop_attribute(node):
            raise Refused(
                f"attribute access .{node.attr} is not allowed: variables "
                "are plain values; only loop.index, loop.first and the like work, inside a for",
                node.lineno,
            )
        if isinstance(node, nodes.Getitem) and not _index(node):
            raise Refused(
                "only a list's item by number is allowed in [...], e.g. {{ items[0] }}",
                node.lineno,
            )
        if isinstance(node, nodes.Filter) and _names_attribute(node):
            raise Refused(
                f"attribute= is not allowed (nor {node.name}'s attribute argument in its place): "
                "variables have no attributes",
                node.lineno,
            )
        if isinstance(node, nodes.For) and (node.recursive or depth > MAX_LOOP_DEPTH):
            raise Refused(
                f"for loops may be at most {MAX_LOOP_DEPTH} deep and not recursive: "
                "loop over the list once",
                node.lineno,
            )
        if not isinstance(node, _ALLOWED):
            raise Refused(
                f"{type(node).__name__} is not allowed: use only "
                "{{ variables }}, filters, {% if %} and {% for %}",
                node.lineno,
            )


def _walk(node: nodes.Node, depth: int) -> Iterator[tuple[nodes.Node, int]]:
    inside = depth + 1 if isinstance(node, nodes.For) else depth
    yield node, inside
    for child in node.iter_child_nodes():
        yield from _walk(child, inside)


def _names_attribute(node: nodes.Filter) -> bool:
    """Whether a filter is given an attribute to read of each item (sort, join, sum ...)."""
    at = _ATTRIBUTE_AT.get(node.name)
    return any(k.key == "attribute" for k in node.kwargs) or (
        at is not None and len(node.args) > at
    )


def _loop_attribute(node: nodes.Getattr) -> bool:
    target = node.node
    return (
        isinstance(target, nodes.Name) and target.name == "loop" and (node.attr in LOOP_ATTRIBUTES)
    )


def _index(node: nodes.Getitem) -> bool:
    arg = node.arg
    return isinstance(arg, nodes.Const) and _number(arg.value) and isinstance(arg.value, int)
