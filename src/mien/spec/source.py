"""Read persona documents from text, safely, remembering where every value came from.

Used by :mod:`mien.spec.document` (and through it by the CLI, agent and server). The
reader builds plain Python data from the YAML event stream itself, without recursion, so a
hostile document (a "billion laughs" alias bomb, 100,000 nested brackets, a binary or a
50 MB file) is refused with a message instead of exhausting memory or the C stack. It also
records the line and column of every key and value, so later stages can point at them.

Scalars follow the YAML 1.2 core schema: only ``true``/``false`` are booleans, so a key
``on:`` or a value ``no`` stays a string (the "Norway problem" of YAML 1.1).
JSON documents are parsed by :mod:`json` (exact JSON semantics) and positioned by the same
event reader.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from mien.spec.errors import FieldPath, PathPart, Problem, SpecError

MAX_BYTES = 2 * 1024 * 1024
"""Largest document accepted, in bytes. Real personas are a few KiB."""
MAX_DEPTH = 32
"""Deepest nesting of maps and lists accepted."""
MAX_NODES = 100_000
"""Most values a document may expand to, counting every alias expansion."""

_CLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

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


@dataclass
class Loaded:
    """A parsed document: plain data plus where each part of it was written."""

    data: Any
    where: SourceMap
    text: str


def _fail(name: str, message: str, line: int = 1, column: int = 1) -> SpecError:
    return SpecError([Problem(name, line, column, (), message)])


def decode(raw: bytes, name: str) -> str:
    """Bytes to text, refusing what is not a text document."""
    if len(raw) > MAX_BYTES:
        raise _fail(
            name,
            f"document is {len(raw):,} bytes; the limit is {MAX_BYTES:,} "
            "(a persona is a few KiB: split large files or data out of it)",
        )
    nul = raw.find(b"\0")
    if nul >= 0:
        raise _fail(name, f"not a text document (binary data at byte {nul})")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _fail(name, f"not UTF-8 text (invalid byte at offset {exc.start})", line) from exc
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise _fail(name, "empty document: expected a persona (a YAML or JSON mapping)")
    return text


# First characters a null, boolean or number can start with (YAML 1.2 core schema).
_SPECIAL_FIRST = frozenset("~nNtTfF0123456789+-.")


def _scalar(value: str, tag: str | None, implicit: tuple[bool, bool], style: str | None) -> Any:
    if tag not in (None, "!", "tag:yaml.org,2002:str") and not implicit[0]:
        if tag == "tag:yaml.org,2002:int":
            return int(value, 0)
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
        return int(value, 0) if value[:2] in ("0x", "0o") else int(value)
    if _FLOAT.match(value):
        return float(value.replace(".inf", "inf").replace(".Inf", "inf").replace(".INF", "inf"))
    return value


class _Builder:
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
            raise _fail(
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
                    raise _fail(
                        self.name,
                        "more than one YAML document: put each persona in its own file",
                        mark.line,
                        mark.column,
                    )
                continue
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if stack and stack[-1][5] and stack[-1][2] is _NO_KEY:
                    mark = self._mark(event)
                    raise _fail(self.name, "a key must be a plain value", mark.line, mark.column)
                if len(stack) >= MAX_DEPTH:
                    mark = self._mark(event)
                    raise _fail(
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
                value = _scalar(event.value, event.tag, event.implicit, style)
                if stack and stack[-1][5] and stack[-1][2] is _NO_KEY:
                    self._key(stack[-1], value, event)
                    continue
                self._place(stack, value, event, size=1, style=style)
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
                    raise _fail(self.name, f"unknown alias *{event.anchor}", mark.line, mark.column)
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


def parse_text(text: str, name: str, *, json_format: bool | None = None) -> Loaded:
    """Parse one YAML or JSON document into data and positions.

    ``json_format`` forces JSON (``True``) or YAML (``False``); by default a document whose
    first non-blank character is ``{`` or ``[`` is read as JSON, falling back to YAML.
    Raises :class:`SpecError` with every problem found.
    """
    stripped = text.lstrip()
    as_json = json_format if json_format is not None else stripped[:1] in ("{", "[")
    builder = _Builder(name)
    builder.where.lines = text.splitlines()
    data: Any
    if as_json:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if json_format:
                raise _fail(name, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from exc
        except RecursionError as exc:
            raise _fail(name, f"nested more than {MAX_DEPTH} levels deep") from exc
        else:
            try:  # positions only; JSON's own parse decides the values
                builder.build(yaml.parse(text, Loader=_CLoader))
            except (yaml.YAMLError, SpecError):
                builder.where.keys.clear()
                builder.where.values.clear()
            _check_shape(data, name)
            return Loaded(data, builder.where, text)
    try:
        data = _build_yaml(builder, text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or str(exc)
        raise _fail(name, f"invalid YAML: {problem}", line, col) from exc
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        raise _fail(
            name, f"invalid YAML: {exc.reason} (character {code:#x})", line, column
        ) from exc
    except yaml.YAMLError as exc:
        raise _fail(name, f"invalid YAML: {exc}") from exc
    if builder.problems:
        raise SpecError(builder.problems)
    return Loaded(data, builder.where, text)


def _build_yaml(builder: _Builder, text: str) -> Any:
    try:
        return builder.build(yaml.parse(text, Loader=_CLoader))
    except yaml.MarkedYAMLError as exc:
        # libyaml scans ahead and, in newer releases, stops at its own nesting limit before
        # mien's builder sees the level past MAX_DEPTH. The pure-Python parser yields events
        # as it goes, so a second pass lets mien's limit (and message and position) decide.
        if "nesting depth" not in str(exc.problem):
            raise
        fresh = _Builder(builder.name)
        fresh.where.lines = builder.where.lines
        data = fresh.build(yaml.parse(text, Loader=yaml.SafeLoader))
        builder.where, builder.problems = fresh.where, fresh.problems
        return data


def _check_shape(data: Any, name: str) -> None:
    # json.loads has no depth or size limit of its own beyond recursion; enforce ours.
    stack: list[tuple[Any, int]] = [(data, 0)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise _fail(name, f"nested more than {MAX_DEPTH} levels deep")
        if count > MAX_NODES:
            raise _fail(name, f"document has more than {MAX_NODES:,} values")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def load_bytes(raw: bytes, name: str, *, json_format: bool | None = None) -> Loaded:
    """Decode and parse one document; see :func:`parse_text`."""
    return parse_text(decode(raw, name), name, json_format=json_format)
