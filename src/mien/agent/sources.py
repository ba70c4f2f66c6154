"""Where the persona to apply comes from: a file, a name in the personas directories, the
persona marked ``default_persona``, or a document the server sent; and the effective
persona once the user's customizations are laid over it.

Used by the engine (:mod:`mien.agent.engine_base`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mien.spec.catalog import SUFFIXES, Catalog
from mien.spec.compose import compose, customization_layer
from mien.spec.document import Document, load_file
from mien.spec.layers import Layer, Resolved


class NoSuchPersona(Exception):
    """The persona asked for is not a file and not found by name (or no default is marked)."""


@dataclass
class Source:
    """A persona ready to be applied: its effective document before customizations."""

    name: str
    data: dict[str, Any]
    locked_by: dict[str, str]
    label: str

    def digest(self) -> str:
        """What the persona says (not where it came from), as a key for remembered no-ops."""
        text = json.dumps([self.name, self.data, self.locked_by], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def load(catalog: Catalog, target: str | Path) -> Document:
    """A persona by file path or by name in the catalog's directories."""
    text = str(target)
    path = Path(text)
    if path.suffix in SUFFIXES or "/" in text or path.exists():
        return load_file(path)
    found = catalog.path_of(text)
    if found is None:
        places = ", ".join(str(d) for d in catalog.dirs)
        raise NoSuchPersona(f"no persona {text!r}: not a file, and not found in {places}")
    return catalog.load(found)


def default_document(catalog: Catalog) -> Document:
    """The one persona marked ``default_persona: true`` in the catalog's directories."""
    defaults = [
        catalog.load(path)
        for path in catalog.names().values()
        if catalog.load(path).persona.default_persona
    ]
    places = ", ".join(str(d) for d in catalog.dirs)
    if not defaults:
        raise NoSuchPersona(f"no persona with default_persona: true in {places}")
    if len(defaults) > 1:
        names = ", ".join(sorted(d.name for d in defaults))
        raise NoSuchPersona(f"several personas are marked default_persona: {names}")
    return defaults[0]


def resolve_source(
    catalog: Catalog, target: str | Path | None, overlays: Sequence[str | Path] = ()
) -> Source:
    """A persona with its extends chain and overlay files resolved."""
    doc = default_document(catalog) if target is None else load(catalog, target)
    over = [load_file(o, overlay=True) for o in overlays]
    resolved = catalog.resolve(doc, over)
    return Source(resolved.name, resolved.data, dict(resolved.locked_by), doc.source)


def source_from_data(data: Mapping[str, Any], label: str) -> Source:
    """A persona received already resolved (from the server)."""
    resolved = compose([Layer("persona", label, dict(data), persona=str(data.get("name")))])
    return Source(resolved.name, resolved.data, dict(resolved.locked_by), label)


def effective(source: Source, customizations: Mapping[str, Any]) -> Resolved:
    """The persona with the user's customizations over it (locked keys left out)."""
    layer = Layer("persona", source.label, source.data, persona=source.name or None)
    custom = customization_layer(customizations) if customizations else None
    return compose([layer], customizations=custom, locked_by=source.locked_by)
