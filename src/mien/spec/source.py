"""Read persona documents from text, safely, remembering where every value came from.

Used by :mod:`mien.spec.document` (and through it by the CLI, agent and server). The
reader builds plain Python data from the YAML event stream itself, without recursion
(:mod:`mien.spec.yaml_events`), so a
hostile document (a "billion laughs" alias bomb, 100,000 nested brackets, a binary or a
50 MB file) is refused with a message instead of exhausting memory or the C stack. It also
records the line and column of every key and value, so later stages can point at them.

Scalars follow the YAML 1.2 core schema: only ``true``/``false`` are booleans, so a key
``on:`` or a value ``no`` stays a string (the "Norway problem" of YAML 1.1).
JSON documents are parsed by :mod:`json` (exact JSON semantics) and positioned by the same
event reader. Values nothing can hold (a lone UTF-16 surrogate, an integer past 64 bits)
are problems at their field, in either format (:mod:`mien.spec.portable`).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

import yaml

from mien.spec.errors import FieldPath, Problem, SpecError
from mien.spec.portable import bad_values, load_json, mask_surrogate_escapes
from mien.spec.yaml_events import MAX_DEPTH, MAX_NODES, Builder, Mark, SourceMap, fail

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "Loaded",
    "Mark",
    "SourceMap",
    "decode",
    "load_bytes",
    "parse_text",
]

MAX_BYTES = 2 * 1024 * 1024
"""Largest document accepted, in bytes. Real personas are a few KiB."""

_CLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Loaded:
    """A parsed document: plain data plus where each part of it was written."""

    data: Any
    where: SourceMap
    text: str


def decode(raw: bytes, name: str) -> str:
    """Bytes to text, refusing what is not a text document."""
    if len(raw) > MAX_BYTES:
        raise fail(
            name,
            f"document is {len(raw):,} bytes; the limit is {MAX_BYTES:,} "
            "(a persona is a few KiB: split large files or data out of it)",
        )
    nul = raw.find(b"\0")
    if nul >= 0:
        raise fail(name, f"not a text document (binary data at byte {nul})")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise fail(name, f"not UTF-8 text (invalid byte at offset {exc.start})", line) from exc
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise fail(name, "empty document: expected a persona (a YAML or JSON mapping)")
    return text


def parse_text(text: str, name: str, *, json_format: bool | None = None) -> Loaded:
    """Parse one YAML or JSON document into data and positions.

    ``json_format`` forces JSON (``True``) or YAML (``False``); by default a document whose
    first non-blank character is ``{`` or ``[`` is read as JSON, falling back to YAML.
    Raises :class:`SpecError` with every problem found.
    """
    stripped = text.lstrip()
    as_json = json_format if json_format is not None else stripped[:1] in ("{", "[")
    builder = Builder(name)
    builder.where.lines = text.splitlines()
    data: Any
    if as_json:
        try:
            data = load_json(text)
        except json.JSONDecodeError as exc:
            if json_format:
                raise fail(name, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from exc
        except RecursionError as exc:
            raise fail(name, f"nested more than {MAX_DEPTH} levels deep") from exc
        else:
            try:  # positions only; JSON's own parse decides the values
                builder.build(yaml.parse(mask_surrogate_escapes(text), Loader=_CLoader))
            except (yaml.YAMLError, SpecError):
                builder.where.keys.clear()
                builder.where.values.clear()
            _check_shape(data, name)
            bad = bad_values(data)
            if bad:
                raise SpecError(builder.where.problem(path, message) for path, message in bad)
            return Loaded(data, builder.where, text)
    try:
        data = _build_yaml(builder, text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or str(exc)
        if "invalid Unicode character escape" in problem:
            raise _surrogate_escape(text, name, line, col) from exc
        raise fail(name, f"invalid YAML: {problem}", line, col) from exc
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        raise fail(name, f"invalid YAML: {exc.reason} (character {code:#x})", line, column) from exc
    except yaml.YAMLError as exc:
        raise fail(name, f"invalid YAML: {exc}") from exc
    if builder.problems:
        raise SpecError(builder.problems)
    return Loaded(data, builder.where, text)


def _surrogate_escape(text: str, name: str, line: int, column: int) -> SpecError:
    """libyaml refuses a surrogate escape (``"\\ud800"``) without naming the field: find
    the double-quoted value or key it is in, from a parse with the escapes masked."""
    path: FieldPath = ()
    start = Mark(1, 1)
    located = Builder(name)
    with contextlib.suppress(yaml.YAMLError, SpecError):
        located.build(yaml.parse(mask_surrogate_escapes(text), Loader=_CLoader))
    for candidate, mark in (*located.where.keys.items(), *located.where.values.items()):
        if (start.line, start.column) <= (mark.line, mark.column) <= (line, column):
            path, start = candidate, mark
    return SpecError(
        [
            Problem(
                name,
                start.line if path else line,
                start.column if path else column,
                path,
                "a \\u escape of a UTF-16 surrogate (\\ud800-\\udfff) is not a character: write "
                "the character itself, or \\U0001F600 for one beyond \\uFFFF",
            )
        ]
    )


def _build_yaml(builder: Builder, text: str) -> Any:
    try:
        return builder.build(yaml.parse(text, Loader=_CLoader))
    except yaml.MarkedYAMLError as exc:
        # libyaml scans ahead and, in newer releases, stops at its own nesting limit before
        # mien's builder sees the level past MAX_DEPTH. The pure-Python parser yields events
        # as it goes, so a second pass lets mien's limit (and message and position) decide.
        if "nesting depth" not in str(exc.problem):
            raise
        fresh = Builder(builder.name)
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
            raise fail(name, f"nested more than {MAX_DEPTH} levels deep")
        if count > MAX_NODES:
            raise fail(name, f"document has more than {MAX_NODES:,} values")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def load_bytes(raw: bytes, name: str, *, json_format: bool | None = None) -> Loaded:
    """Decode and parse one document; see :func:`parse_text`."""
    return parse_text(decode(raw, name), name, json_format=json_format)
