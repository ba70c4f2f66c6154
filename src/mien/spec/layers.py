"""The pieces of a composition and what it yields: :class:`Layer` (one document, with a
label people recognise), :class:`Origin` (a value a layer set at a path) and
:class:`Resolved` (the effective persona, its layers and the trail of which layer set
each value), with :func:`lookup` and the :data:`DELETED` marker.

:mod:`mien.spec.compose` builds them; whoever reads a composed persona uses them: the
agent (its plan and engine), the server (resolving instances' personas) and ``mien
render``/``explain``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mien.spec.document import Document
from mien.spec.errors import FieldPath, Problem
from mien.spec.models import Persona
from mien.spec.source import SourceMap

LayerKind = Literal["persona", "overlay", "binding", "addition", "customization"]
DELETED: Any = type("Deleted", (), {"__repr__": lambda self: "<deleted>"})()


@dataclass
class Layer:
    """One document in a composition, with a label users recognise."""

    kind: LayerKind
    label: str
    data: dict[str, Any]
    where: SourceMap | None = None
    persona: str | None = None

    @classmethod
    def of(cls, doc: Document, kind: LayerKind | None = None) -> Layer:
        chosen: LayerKind = kind or ("overlay" if doc.overlay else "persona")
        return cls(chosen, doc.source, doc.data, doc.where, doc.name or None)

    def position(self, path: FieldPath) -> str:
        if self.where is None:
            return self.label
        mark = self.where.find(path)
        return f"{self.label}:{mark.line}:{mark.column}"

    def problem(self, path: FieldPath, message: str) -> Problem:
        if self.where is None:
            return Problem(self.label, 0, 0, path, message)
        return self.where.problem(path, message)


@dataclass(frozen=True, slots=True)
class Origin:
    """A value a layer set at a path (``DELETED`` when it deleted the key)."""

    layer: Layer
    path: FieldPath
    value: Any

    def describe(self) -> str:
        return self.layer.position(self.path)


@dataclass
class Resolved:
    """The effective persona and how it came about."""

    persona: Persona
    data: dict[str, Any]
    hash: str
    chain: list[str]
    layers: list[Layer]
    trail: dict[FieldPath, list[Origin]]
    locked_by: dict[str, str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.persona.name or ""

    def explain(self, path: FieldPath) -> tuple[Any, list[Origin]]:
        """The value at ``path`` and every origin that touched it, oldest first.

        For a map, the origins of its keys; for a key set as part of a larger value (a
        list, or a map set whole), the origins of that value.
        """
        value = lookup(self.data, path)
        exact = [o for p, origins in self.trail.items() if p[: len(path)] == path for o in origins]
        if exact:
            return value, sorted(exact, key=lambda o: self.layers.index(o.layer))
        for cut in range(len(path) - 1, 0, -1):
            origins = self.trail.get(path[:cut])
            if origins:
                return value, list(origins)
        return value, []


def lookup(data: Any, path: FieldPath) -> Any:
    """The value at ``path`` in nested data, or ``DELETED`` when there is none."""
    for part in path:
        if (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and -len(data) <= part < len(data)
        ):
            data = data[part]  # type: ignore[index]
        else:
            return DELETED
    return data
