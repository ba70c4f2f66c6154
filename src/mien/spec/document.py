"""One persona document, read, put in canonical form and validated on its own.

This is the entry point for anything that holds persona text: ``mien validate`` reads files
with :func:`load_file`, the server validates uploads with :func:`parse_document`. The result
is a :class:`Document` (canonical data, positions, the validated model and any warnings) or
a :class:`~mien.spec.errors.SpecError` listing every problem as
``FILE:LINE:COL: field.path: message``. Composition of several documents (extends,
overlays, customizations) is :mod:`mien.spec.compose`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mien.spec import rulecheck
from mien.spec.errors import FieldPath, Problem, SpecError
from mien.spec.forms import Normaliser
from mien.spec.models import Persona
from mien.spec.source import MAX_BYTES, Mark, SourceMap, load_bytes, parse_text
from mien.spec.telemetry import ungranted


@dataclass
class Document:
    """A parsed persona (or overlay) document in canonical form."""

    source: str
    data: dict[str, Any]
    where: SourceMap
    persona: Persona
    warnings: list[Problem] = field(default_factory=list)
    overlay: bool = False

    @property
    def name(self) -> str:
        return str(self.data.get("name") or "")


def _all_field_names() -> list[str]:
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [Persona]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            names.add(info.alias or name)
            for arg in _model_types(info.annotation):
                todo.append(arg)
    return sorted(names)


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    out: list[type[BaseModel]] = []
    stack = [annotation]
    while stack:
        item = stack.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            out.append(item)
        stack.extend(getattr(item, "__args__", ()) or ())
        origin = getattr(item, "__origin__", None)
        if origin is not None and origin is not item:
            stack.append(origin)
    return out


_FIELD_NAMES: list[str] = []


def _message(error: Any) -> str:
    kind = error["type"]
    msg: str = error["msg"]
    if kind == "extra_forbidden":
        if not _FIELD_NAMES:
            _FIELD_NAMES.extend(_all_field_names())
        bad = str(error["loc"][-1]) if error["loc"] else ""
        hint = difflib.get_close_matches(bad, _FIELD_NAMES, 1)
        return "unknown field" + (f"; did you mean {hint[0]!r}?" if hint else "")
    if kind == "missing":
        return "required field is missing"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if kind == "literal_error":
        return msg.replace("Input should be", "must be one of:", 1)
    ctx = error.get("ctx") or {}
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "string_pattern_mismatch":
        return f"{error.get('input')!r} does not match the pattern {ctx.get('pattern')}"
    return msg.replace("Input should be ", "must be ", 1)


def problems_from(exc: ValidationError, where: SourceMap, data: Any) -> list[Problem]:
    """Translate pydantic's errors to problems positioned in the source text."""
    out: list[Problem] = []
    seen: set[tuple[FieldPath, str]] = set()
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        key_error = bool(loc) and loc[-1] == "[key]"
        if key_error:
            loc = loc[:-1]
        path: FieldPath = tuple(p for p in loc if isinstance(p, int | str))
        message = _message(error)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        on_key = key_error or error["type"] in ("extra_forbidden",)
        if error["type"] == "missing":
            mark = where.find(path[:-1]) if path else Mark(1, 1)
        else:
            mark = where.find(path, key=on_key)
        line, column = mark.line, mark.column
        ctx = error.get("ctx") or {}
        if error["type"] == "cel":
            line, column = _inside_scalar(where, mark, int(ctx["line"]), int(ctx["column"]))
        out.append(Problem(where.name, line, column, path, message))
    return out


def _inside_scalar(where: SourceMap, mark: Mark, line: int, column: int) -> tuple[int, int]:
    """File position of (line, column) inside a string value that starts at ``mark``."""
    if mark.style == "|":
        # Literal block: content starts on the next line, at the block's indentation.
        first = where.lines[mark.line] if mark.line < len(where.lines) else ""
        indent = len(first) - len(first.lstrip(" "))
        return mark.line + line, indent + column
    if mark.style == ">" or line == 1:
        # Folded, plain and quoted scalars join their lines with one space: walk them.
        offset, row = column - 1, mark.line - 1
        start = mark.column - 1 + (1 if mark.style in ("'", '"') else 0)
        if mark.style == ">":
            row, start = mark.line, -1
        while row < len(where.lines):
            text = where.lines[row]
            begin = len(text) - len(text.lstrip(" ")) if start < 0 else start
            segment = len(text[begin:].rstrip())
            if offset <= segment or row + 1 >= len(where.lines):
                return row + 1, begin + offset + 1
            offset -= segment + 1
            row, start = row + 1, -1
    return mark.line + line - 1, column


def validate_data(
    data: dict[str, Any], where: SourceMap, *, overlay: bool = False
) -> tuple[Persona, list[Problem]]:
    """Validate canonical data. ``null`` anywhere means "delete this key" when the document
    is composed over another, so on its own it is simply absent."""
    checked = _without_nulls(data)
    try:
        persona = Persona.model_validate(checked)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, where, data)) from None
    # What a rule needs from the rest of the persona (domains, responses, sources) is
    # checked here only on a persona that stands alone; compose checks the rest.
    whole = not overlay and not persona.extends
    found = [
        where.problem(path, message, severity=severity)
        for path, message, severity in rulecheck.check(persona, whole=whole)
    ]
    if any(p.severity == "error" for p in found):
        raise SpecError(found)
    return persona, found + lint(persona, where)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def lint(persona: Persona, where: SourceMap) -> list[Problem]:
    """Warnings: valid, but probably not what the author meant."""
    out: list[Problem] = []
    if persona.priority_metrics and persona.adaptation_rules and not persona.trust_levels:
        out.append(
            where.problem(
                ("adaptation_rules",),
                "no trust_levels: every action that needs trust will be refused",
                severity="warning",
            )
        )
    for part, message in ungranted(persona.telemetry, list(persona.learning_domains)):
        out.append(where.problem(("telemetry", part), message, severity="warning"))
    return out


def build_document(
    loaded_data: Any, where: SourceMap, source: str, stem: str, *, overlay: bool = False
) -> Document:
    normaliser = Normaliser(where, stem, overlay=overlay)
    data = normaliser.run(loaded_data)
    problems = list(normaliser.problems)
    persona: Persona | None = None
    warnings: list[Problem] = []
    try:
        persona, warnings = validate_data(data, where, overlay=overlay)
    except SpecError as exc:
        problems.extend(exc.problems)
    if problems or persona is None:
        raise SpecError(problems)
    return Document(source, data, where, persona, warnings, overlay)


def parse_document(
    text: str | bytes, source: str = "<input>", *, stem: str | None = None, overlay: bool = False
) -> Document:
    """Parse, normalise and validate persona text (YAML or JSON)."""
    stem = stem if stem is not None else Path(source).stem
    json_format = True if source.endswith(".json") else None
    if isinstance(text, bytes):
        loaded = load_bytes(text, source, json_format=json_format)
    else:
        loaded = parse_text(text, source, json_format=json_format)
    return build_document(loaded.data, loaded.where, source, stem, overlay=overlay)


def load_file(path: str | Path, *, overlay: bool = False) -> Document:
    """Read and validate one persona file; :class:`SpecError` names every problem."""
    p = Path(path)
    name = str(path)
    try:
        if p.is_dir():
            raise _io_error(name, "is a directory, not a persona file")
        with p.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise _io_error(name, "no such file") from None
    except PermissionError:
        raise _io_error(name, "permission denied") from None
    except OSError as exc:
        raise _io_error(name, exc.strerror or str(exc)) from None
    return parse_document(raw, name, stem=p.stem, overlay=overlay)


def _io_error(name: str, message: str) -> SpecError:
    return SpecError([Problem(name, 0, 0, (), message)])
