"""A strict YAML reader for hand-written configuration (settings, policies).

PyYAML implements YAML 1.1, whose implicit typing surprises people who edit
files by hand: `no` becomes False (the "Norway problem"), `0755` becomes 493
and `1:30` becomes 90. Here only `true`/`false` are booleans and anything
ambiguous is an error with a hint, never a silent guess. Duplicate keys,
anchors/aliases, merge keys and explicit tags are refused too, because each
makes a file mean something other than what it plainly says.

`load_yaml` also records where every key and value sits, so that a later
validation error at a key path such as ("delivery", "workers") can be
reported at the right line and column.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    NodeEvent,
    ScalarEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

KeyPath = tuple[str | int, ...]

__all__ = [
    "KeyPath",
    "Mark",
    "StrictLoader",
    "YamlDocument",
    "YamlError",
    "describe_value",
    "format_path",
    "load_yaml",
]


@dataclass(frozen=True)
class Mark:
    """A 1-based position in the source text."""

    line: int
    column: int


def format_path(path: KeyPath) -> str:
    """Render ("listeners", 0, "tls") as "listeners[0].tls"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def describe_value(value: Any) -> str:
    """Show a parsed value the way the user would recognise it in the file."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return json.dumps(shown, ensure_ascii=False)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a section of key: value settings"
    return type(value).__name__


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


class YamlError(Exception):
    """One problem in a hand-written file, with where it is and how to fix it.

    `line` and `column` are 1-based; they are None when the problem has no
    position (an unreadable file, or a command-line flag given as `source`).
    """

    def __init__(
        self,
        source: str,
        line: int | None,
        column: int | None,
        message: str,
        hint: str = "",
        key: str = "",
    ) -> None:
        self.source = source
        self.line = line
        self.column = column
        self.message = message
        self.hint = hint
        self.key = key
        super().__init__(source, line, column, message, hint, key)

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: "
        if self.key:
            text += f"{self.key}: "
        text += _sentence(self.message)
        if self.hint:
            text += f" Fix: {_sentence(self.hint)}"
        return text


@dataclass
class YamlDocument:
    """Parsed data plus the position of every key and value in the source.

    `marks` maps a key path to where its key is written (for list items:
    where the item starts); `value_marks` maps the path of each scalar value
    to where the value itself is written.
    """

    data: Any
    source: str
    marks: dict[KeyPath, Mark] = field(default_factory=dict)
    value_marks: dict[KeyPath, Mark] = field(default_factory=dict)

    def mark(self, path: KeyPath) -> Mark:
        """Best position for a problem at `path`.

        A scalar points at its value; a section at its key; a path that is
        not in the file (a missing key) at the closest enclosing key.
        """
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            found = self.value_marks.get(prefix) or self.marks.get(prefix)
            if found is not None:
                return found
        return Mark(1, 1)

    def key_mark(self, path: KeyPath) -> Mark:
        """Position of the key itself (or of the closest enclosing key)."""
        for end in range(len(path), -1, -1):
            found = self.marks.get(path[:end])
            if found is not None:
                return found
        return Mark(1, 1)

    def error(
        self, path: KeyPath, message: str, hint: str = "", *, at_key: bool = False
    ) -> YamlError:
        """Build a YamlError located at `path`, for validators of the parsed data."""
        where = self.key_mark(path) if at_key else self.mark(path)
        return YamlError(self.source, where.line, where.column, message, hint, format_path(path))


# Scalar typing. Plain (unquoted) scalars are matched against these in order;
# quoted and block scalars are always text. Case-insensitive throughout so
# that TRUE, True and true agree, and so that YES is caught like yes.
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_STR = "tag:yaml.org,2002:str"
# Pseudo-tags for values that YAML 1.1 would silently turn into something else.
_BAD_BOOL = "tag:phigate,2024:ambiguous-bool"
_BAD_OCTAL = "tag:phigate,2024:leading-zero"
_BAD_RADIX = "tag:phigate,2024:radix-int"
_BAD_BASE60 = "tag:phigate,2024:base-60"

_PLAIN_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"~|null|", re.IGNORECASE), _NULL),
    (re.compile(r"true|false", re.IGNORECASE), _BOOL),
    (re.compile(r"yes|no|on|off|y|n", re.IGNORECASE), _BAD_BOOL),
    (re.compile(r"[-+]?(?:0|[1-9][0-9]*(?:_[0-9]+)*)"), _INT),
    (re.compile(r"[-+]?0[0-9_]+"), _BAD_OCTAL),
    (re.compile(r"[-+]?0(?:x[0-9a-f_]+|o[0-7_]+|b[01_]+)", re.IGNORECASE), _BAD_RADIX),
    (re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?"), _BAD_BASE60),
    (
        re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:e[-+]?[0-9]+)?", re.IGNORECASE),
        _FLOAT,
    ),
    (re.compile(r"[-+]?\.inf|\.nan", re.IGNORECASE), _FLOAT),
]


def _plain_tag(value: str) -> str:
    for pattern, tag in _PLAIN_RULES:
        if pattern.fullmatch(value):
            return tag
    return _STR


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, anchors and tags, and types scalars strictly.

    Use through `load_yaml`, which also checks keys and builds the data.
    """

    def __init__(self, stream: str, source: str = "<yaml>") -> None:
        super().__init__(stream)
        self.source = source

    def _refuse(self, event: NodeEvent, message: str, hint: str) -> YamlError:
        mark = event.start_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        return YamlError(self.source, line, column, message, hint)

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
        # Aliases make one place in the file silently change another, and
        # they are the vehicle of "billion laughs" expansion.
        if isinstance(event, AliasEvent):
            raise self._refuse(
                event,
                f"aliases (*{event.anchor}) are not supported",
                "write the value out in full where it is needed",
            )
        if isinstance(event, ScalarEvent | CollectionStartEvent):
            if event.anchor is not None:
                raise self._refuse(
                    event,
                    f"anchors (&{event.anchor}) are not supported",
                    f"remove &{event.anchor} and write values out in full where they are needed",
                )
            if event.tag is not None:
                # Show the tag as written: !!str rather than tag:yaml.org,2002:str.
                shown = event.tag.replace("tag:yaml.org,2002:", "!!", 1)
                raise self._refuse(
                    event,
                    f"tags such as {shown} are not supported",
                    "remove the tag; put the value in quotes if it must be text",
                )
        return super().compose_node(parent, index)

    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            # implicit[0] is true for plain scalars; quoted ones are text.
            return _plain_tag(value) if implicit[0] else _STR
        if kind is SequenceNode:
            return self.DEFAULT_SEQUENCE_TAG
        return self.DEFAULT_MAPPING_TAG


class _Builder:
    """Turns the node tree into plain data, recording positions and checking keys."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.marks: dict[KeyPath, Mark] = {}
        self.value_marks: dict[KeyPath, Mark] = {}

    def _error(self, node: Node, path: KeyPath, message: str, hint: str) -> YamlError:
        mark = _mark(node)
        return YamlError(self.source, mark.line, mark.column, message, hint, format_path(path))

    def build(self, node: Node, path: KeyPath) -> Any:
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            items: list[Any] = []
            for index, child in enumerate(node.value):
                child_path = (*path, index)
                self.marks[child_path] = _mark(child)
                items.append(self.build(child, child_path))
            return items
        assert isinstance(node, ScalarNode)
        self.value_marks[path] = _mark(node)
        return self._scalar(node, path)

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self._error(
                    key_node,
                    path,
                    "a key must be a single word or text, not a list or section",
                    'write "key: value"',
                )
            # Keys are taken literally as text: `on:` is the key "on", not True.
            key = str(key_node.value)
            child_path = (*path, key)
            if key == "<<" and key_node.style is None:
                raise self._error(
                    key_node,
                    child_path,
                    "merge keys (<<) are not supported",
                    "write the merged settings out in full",
                )
            if key in result:
                first = self.marks[child_path]
                here = _mark(key_node)
                raise YamlError(
                    self.source,
                    here.line,
                    here.column,
                    f'duplicate key "{key}" '
                    f"(first on line {first.line}, again on line {here.line})",
                    "keep only one of them; otherwise one would silently override the other",
                    format_path(child_path),
                )
            self.marks[child_path] = _mark(key_node)
            result[key] = self.build(value_node, child_path)
        return result

    def _scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        text: str = node.value
        tag = node.tag
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return text.lower() == "true"
        if tag == _INT:
            return int(text)
        if tag == _FLOAT:
            # Python spells YAML's .inf/.nan without the dot.
            return float(text.replace(".", "") if text.lower().endswith(("inf", "nan")) else text)
        if tag == _BAD_BOOL:
            raise self._error(
                node,
                path,
                f"{text} is not a boolean here: only true and false are",
                f'write true or false, or put it in quotes ("{text}") if you mean the text',
            )
        if tag == _BAD_OCTAL:
            raise self._error(
                node,
                path,
                f"{text} has a leading zero, which some YAML readers take as an octal number",
                f'put it in quotes ("{text}") if you mean the text, '
                "or write the number without the leading zero",
            )
        if tag == _BAD_RADIX:
            raise self._error(
                node,
                path,
                f"{text} is a hexadecimal, octal or binary number",
                f'write the number in decimal, or put it in quotes ("{text}") if you mean the text',
            )
        if tag == _BAD_BASE60:
            raise self._error(
                node,
                path,
                f"{text} looks like a time, which some YAML readers take as a base-60 number",
                f'put it in quotes ("{text}"); for a duration write the number of seconds',
            )
        return text


def _mark(node: Node) -> Mark:
    start = node.start_mark
    if start is None:
        return Mark(1, 1)
    return Mark(start.line + 1, start.column + 1)


def _syntax_hint(problem: str) -> str:
    if "'\\t'" in problem:
        return "indent with spaces; YAML does not allow tab characters here"
    if "mapping values are not allowed" in problem:
        return (
            'put a space after the colon in "key: value", check the indentation, '
            'or quote a value that itself contains ": "'
        )
    if "could not find expected ':'" in problem:
        return 'write each setting as "key: value"'
    if "another document" in problem:
        return "keep a single document: remove the extra --- line"
    if "<block end>" in problem:
        return "indent this line exactly like the other keys of the same section"
    if "end of stream" in problem or "<stream end>" in problem:
        return "close the quote or bracket that was opened"
    return "check the indentation and quoting around this position"


def _syntax_error(exc: yaml.YAMLError, text: str, source: str) -> YamlError:
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or "invalid YAML"
        mark = exc.problem_mark
        context = exc.context_mark
        # An unclosed quote or bracket is only noticed at the end of the file;
        # the place where it was opened is the useful one.
        if context is not None and ("end of stream" in problem or "<stream end>" in problem):
            mark = context
        message = problem
        if "another document" in problem:
            message = "a second document starts here (--- line); only one is allowed"
        elif exc.context:
            message += f" ({exc.context}"
            if context is not None and mark is not None and context.line != mark.line:
                message += f" that starts on line {context.line + 1}"
            message += ")"
        if mark is None:
            return YamlError(source, None, None, message, _syntax_hint(problem))
        return YamlError(source, mark.line + 1, mark.column + 1, message, _syntax_hint(problem))
    if isinstance(exc, ReaderError):
        position = max(0, min(exc.position, len(text)))
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return YamlError(
            source,
            line,
            column,
            f"unacceptable character #x{exc.character:04x}"
            if isinstance(exc.character, int)
            else "unacceptable character",
            "remove the control character (often pasted from another program)",
        )
    return YamlError(source, None, None, str(exc), "check the file is valid YAML")


# Deepest nesting of sections and lists a file may use (see _too_deep).
MAX_DEPTH = 50


def _too_deep(text: str, source: str) -> YamlError | None:
    """A problem if sections and lists nest deeper than any phigate file needs.

    The YAML composer, the strict builder and (for policies) the condition
    compiler all recurse once per level; a file like "[[[[..." a few hundred levels deep
    would end in RecursionError instead of a located problem. PyYAML's event
    parser is iterative, so counting levels with it is safe at any depth.
    """
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    return YamlError(
                        source,
                        mark.line + 1 if mark is not None else 1,
                        mark.column + 1 if mark is not None else 1,
                        f"sections and lists nest more than {MAX_DEPTH} levels deep here",
                        "flatten the file: no phigate file needs this much nesting",
                    )
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None  # load_yaml reports the syntax error, with a better message
    return None


def load_yaml(text: str, source: str) -> YamlDocument:
    """Parse one YAML document strictly; raise YamlError on any problem.

    `source` is the name shown in messages (normally the file path). An
    empty document gives `data` None.
    """
    too_deep = _too_deep(text, source)
    if too_deep is not None:
        raise too_deep
    try:
        # The reader checks for control characters already in the constructor.
        loader = StrictLoader(text, source)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text, source) from None
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise _syntax_error(exc, text, source) from None
        builder = _Builder(source)
        if root is None:
            return YamlDocument(None, source)
        builder.marks[()] = _mark(root)
        data = builder.build(root, ())
        return YamlDocument(data, source, builder.marks, builder.value_marks)
    finally:
        loader.dispose()
