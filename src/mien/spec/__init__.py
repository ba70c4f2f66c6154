"""The persona language, shared by every side of mien.

Public API (import from here):

* :func:`load_file`, :func:`parse_document` → :class:`Document` (one validated document);
* :class:`Catalog` finds personas by name in directories (for ``extends`` and the CLI);
* :func:`resolve` → :class:`Resolved` (extends chain + overlays + customizations + locks),
  with :meth:`Resolved.explain` for "which document set this";
* :func:`canonical`, :func:`to_yaml`, :func:`to_json`, :func:`content_hash`;
* :class:`Persona` and the value types in :mod:`mien.spec.values`;
* :class:`SpecError` / :class:`Problem` for every error, positioned in its file.

Submodules are imported on first use so that importing :mod:`mien.spec` costs nothing
until a persona is actually read.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Problem": "mien.spec.errors",
    "SpecError": "mien.spec.errors",
    "PersonaNotFound": "mien.spec.errors",
    "format_path": "mien.spec.errors",
    "Document": "mien.spec.document",
    "load_file": "mien.spec.document",
    "parse_document": "mien.spec.document",
    "Persona": "mien.spec.models",
    "Catalog": "mien.spec.catalog",
    "Layer": "mien.spec.compose",
    "Resolved": "mien.spec.compose",
    "resolve": "mien.spec.compose",
    "compose": "mien.spec.compose",
    "customization_layer": "mien.spec.compose",
    "parse_key": "mien.spec.compose",
    "format_key": "mien.spec.compose",
    "locking": "mien.spec.compose",
    "canonical": "mien.spec.canonical",
    "content_hash": "mien.spec.canonical",
    "to_yaml": "mien.spec.canonical",
    "to_json": "mien.spec.canonical",
}

if TYPE_CHECKING:
    from mien.spec.canonical import canonical, content_hash, to_json, to_yaml
    from mien.spec.catalog import Catalog
    from mien.spec.compose import (
        Layer,
        Resolved,
        compose,
        customization_layer,
        format_key,
        locking,
        parse_key,
        resolve,
    )
    from mien.spec.document import Document, load_file, parse_document
    from mien.spec.errors import PersonaNotFound, Problem, SpecError, format_path
    from mien.spec.models import Persona


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mien.spec' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Catalog",
    "Document",
    "Layer",
    "Persona",
    "PersonaNotFound",
    "Problem",
    "Resolved",
    "SpecError",
    "canonical",
    "compose",
    "content_hash",
    "customization_layer",
    "format_key",
    "format_path",
    "load_file",
    "locking",
    "parse_document",
    "parse_key",
    "resolve",
    "to_json",
    "to_yaml",
]
