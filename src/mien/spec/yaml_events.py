"""Plain data and positions from a YAML event stream, built without recursion.

Used by :mod:`mien.spec.source`, which reads every persona document through it (JSON ones
too, for positions). :class:`Builder` consumes PyYAML's events iteratively, so a hostile
document (an alias bomb, 100,000 nested brackets) meets mien's limits instead of the C
stack, and records the line and column of every key and value in a :class:`SourceMap`.
Scalars follow the YAML 1.2 core schema; a value nothing can hold (an integer past 64 bits,
a lone UTF-16 surrogate) is a problem at its position (:mod:`mien.spec.portable`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from mien.spec.errors import FieldPath, PathPart, Problem, SpecError
from mien.spec.portable import OutOfRange, int_problem, text_problem

MAX_DEPTH = 32
"""Deepest nesting of maps and lists accepted."""
MAX_NODES = 100_000
"""Most values a document may expand to, counting every alias expansion."""


_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a value starts: 1-based line and column, and how the scalar was written."""

    line: int
    column: int
    style: str | None = None  # None for plain, "'" / '"' quoted, "|" / ">" block


@dataclass
class SourceMap:
    """Positions of keys and values by field path, with renames applied by normalisation.

    Normalisation (:mod:`mien.spec.forms`) renames keys (``SoftwareStack`` becomes
    ``required_applications``) and expands phrases into structures; it records each rename
    with :meth:`alias`, and :meth:`find` translates a canonical path back to where the text
    was, falling back to the nearest ancestor that has a position.
    """

    name: str
    keys: dict[FieldPath, Mark] = field(default_factory=dict)
    values: dict[FieldPath, Mark] = field(default_factory=dict)
    aliases: dict[FieldPath, FieldPath] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def alias(self, canonical: FieldPath, original: FieldPath) -> None:
        if canonical != original:
            self.aliases[canonical] = original

    def _translate(self, path: FieldPath) -> FieldPath:
        # Longest aliased prefix wins; aliases may chain (a rename inside a rename).
        for _ in range(8):
            for cut in range(len(path), 0, -1):
                target = self.aliases.get(path[:cut])
                if target is not None:
                    path = target + path[cut:]
                    break
            else:
                return path
        return path

    def find(self, path: FieldPath, *, key: bool = False) -> Mark:
        """The mark of ``path`` (its key when ``key``), else of its nearest ancestor."""
        path = self._translate(path)
        first, second = (self.keys, self.values) if key else (self.values, self.keys)
        for cut in range(len(path), -1, -1):
            prefix = path[:cut]
            mark = first.get(prefix) or second.get(prefix)
            if mark is not None:
                return mark
        return Mark(1, 1)

    def problem(
        self, path: FieldPath, message: str, *, key: bool = False, severity: str = "error"
    ) -> Problem:
        mark = self.find(path, key=key)
        return Problem(self.name, mark.line, mark.column, path, message, severity)  # type: ignore[arg-type]


def fail(name: str, message: str, line: int = 1, column: int = 1) -> SpecError:
    return SpecError([Problem(name, line, column, (), message)])


# First characters a null, boolean or number can start with (YAML 1.2 core schema).
_SPECIAL_FIRST = frozenset("~nNtTfF0123456789+-.")


def _scalar(value: str, tag: str | None, implicit: tuple[bool, bool], style: str | None) -> Any:
    if tag not in (None, "!", "tag:yaml.org,2002:str") and not implicit[0]:
        if tag == "tag:yaml.org,2002:int":
            return _int(value)
        if tag == "tag:yaml.org,2002:float":
            return float(value)
        if tag == "tag:yaml.org,2002:bool":
            return value.lower() == "true"
        if tag == "tag:yaml.org,2002:null":
            return None
    if style is not None or tag in ("!", "tag:yaml.org,2002:str"):
        return value
    if value and value[0] not in _SPECIAL_FIRST:
        return value  # most plain scalars are words: no pattern below can match them
    if _NULL.match(value):
        return None
    if _BOOL.match(value):
        return value.lower() == "true"
    if _INT.match(value):
        return _int(value)
    if _FLOAT.match(value):
        return float(value.replace(".inf", "inf").replace(".Inf", "inf").replace(".INF", "inf"))
    return value


def _int(literal: str) -> int:
    problem = int_problem(literal)
    if problem:
        raise OutOfRange(problem)
    return int(literal, 0) if literal.lstrip("+-")[:2] in ("0x", "0o") else int(literal)


class Builder:
    """Turns a YAML event stream into data and positions, iteratively and within limits."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.where = SourceMap(name)
        self.nodes = 0
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.problems: list[Problem] = []
        self.merged: set[tuple[int, str]] = set()  # (container id, key) that came from <<

    def _mark(self, event: Any, style: str | None = None) -> Mark:
        m = event.start_mark
        return Mark(m.line + 1, m.column + 1, style)

    def _count(self, n: int, event: Any) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            mark = self._mark(event)
            raise fail(
                self.name,
                f"document expands to more than {MAX_NODES:,} values "
                "(an alias bomb, or far too large for a persona)",
                mark.line,
                mark.column,
            )

    def build(self, events: Any) -> Any:
        # Each frame: [container, path, pending_key (maps), size, anchor, is_map]
        stack: list[list[Any]] = []
        root: Any = None
        documents = 0
        for event in events:
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    mark = self._mark(event)
                    raise fail(
                        self.name,
                        "more than one YAML document: put each persona in its own file",
                        mark.line,
                        mark.column,
                    )
                continue
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if stack and stack[-1][5] and stack[-1][2] is _NO_KEY:
                    mark = self._mark(event)
                    raise fail(self.name, "a key must be a plain value", mark.line, mark.column)
                if len(stack) >= MAX_DEPTH:
                    mark = self._mark(event)
                    raise fail(
                        self.name,
                        f"nested more than {MAX_DEPTH} levels deep",
                        mark.line,
                        mark.column,
                    )
                self._count(1, event)
                container: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
                path = self._place(stack, container, event, size=1)
                stack.append(
                    [container, path, _NO_KEY, 1, event.anchor, isinstance(container, dict)]
                )
                continue
            if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                container, path, _, size, anchor, _ = stack.pop()
                if path and path[-1] == "<<" and stack and stack[-1][5]:
                    self._merge(stack[-1][0], container, path, event)
                if anchor:
                    self.anchors[anchor] = (container, size)
                if stack:
                    stack[-1][3] += size
                else:
                    root = container
                continue
            if isinstance(event, yaml.ScalarEvent):
                self._count(1, event)
                style = event.style or None  # libyaml reports plain style as ""
                try:
                    value = _scalar(event.value, event.tag, event.implicit, style)
                    bad = text_problem(value) if isinstance(value, str) else None
                except ValueError as exc:  # OutOfRange, or a malformed !!int
                    value, bad = event.value, str(exc)
                if bad and isinstance(value, str):
                    value = ascii(value)[1:-1]  # a path or message must stay printable
                if stack and stack[-1][5] and stack[-1][2] is _NO_KEY:
                    self._key(stack[-1], value, event)
                    if bad:
                        self._bad((*stack[-1][1], stack[-1][2]), event, bad)
                    continue
                path = self._place(stack, value, event, size=1, style=style)
                if bad:
                    self._bad(path, event, bad)
                if stack:
                    stack[-1][3] += 1
                if event.anchor:
                    self.anchors[event.anchor] = (value, 1)
                if not stack:
                    root = value
                continue
            if isinstance(event, yaml.AliasEvent):
                if event.anchor not in self.anchors:
                    mark = self._mark(event)
                    raise fail(self.name, f"unknown alias *{event.anchor}", mark.line, mark.column)
                value, size = self.anchors[event.anchor]
                self._count(size, event)
                if stack and stack[-1][5] and stack[-1][2] is _NO_KEY:
                    self._key(stack[-1], value, event)
                    continue
                self._place(stack, value, event, size=size)
                if stack:
                    stack[-1][3] += size
                else:
                    root = value
        return root

    def _bad(self, path: FieldPath, event: Any, message: str) -> None:
        mark = self._mark(event)
        self.problems.append(Problem(self.name, mark.line, mark.column, path, message))

    def _key(self, frame: list[Any], key: Any, event: Any) -> None:
        if isinstance(key, dict | list):
            mark = self._mark(event)
            self.problems.append(
                Problem(self.name, mark.line, mark.column, frame[1], "a key must be a plain value")
            )
            key = json.dumps(key, sort_keys=True)
        elif not isinstance(key, str):
            key = "null" if key is None else str(key).lower() if isinstance(key, bool) else str(key)
        frame[2] = key
        self.where.keys[(*frame[1], key)] = self._mark(event)

    def _place(
        self, stack: list[list[Any]], value: Any, event: Any, size: int, style: str | None = None
    ) -> FieldPath:
        if not stack:
            path: FieldPath = ()
        else:
            frame = stack[-1]
            container = frame[0]
            if frame[5]:
                key: PathPart = frame[2]
                frame[2] = _NO_KEY
                path = (*frame[1], key)
                if key == "<<" and isinstance(value, dict | list):
                    if isinstance(event, yaml.AliasEvent):  # inline ones merge when they end
                        self._merge(container, value, path, event)
                elif key in container and (id(container), key) not in self.merged:
                    mark = self.where.keys.get(path, self._mark(event))
                    self.problems.append(
                        Problem(self.name, mark.line, mark.column, path, f"duplicate key {key!r}")
                    )
                else:  # explicit keys win over merged ones, whatever their order
                    self.merged.discard((id(container), key))
                    container[key] = value
            else:
                path = (*frame[1], len(container))
                container.append(value)
        self.where.values[path] = self._mark(event, style)
        return path

    def _merge(self, target: dict[str, Any], value: Any, path: FieldPath, event: Any) -> None:
        # YAML merge keys: `<<: *base` or `<<: [*a, *b]`; explicit keys win over merged ones.
        sources = value if isinstance(value, list) else [value]
        for src in sources:  # the first source that has a key wins
            if not isinstance(src, dict):
                mark = self.where.values.get(path) or self._mark(event)
                self.problems.append(
                    Problem(self.name, mark.line, mark.column, path, "<< merges only mappings")
                )
                continue
            for k, v in src.items():
                if k not in target:
                    target[k] = v
                    self.merged.add((id(target), k))


_NO_KEY: Any = object()
