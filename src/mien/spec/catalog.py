"""Finding personas by name in directories of persona files.

``extends: base`` and ``mien apply developer`` name personas; a :class:`Catalog` finds them
in its search path (the referring file's directory first, then each ``--personas DIR``).
A file is found by its stem (``base.yaml``, ``persona_base.yml``) or, failing that, by the
``name`` it declares. Used by the CLI and the agent; the server looks personas up in its
database instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from mien.spec.compose import resolve
from mien.spec.document import Document, load_file
from mien.spec.errors import PersonaNotFound, Problem, SpecError
from mien.spec.layers import Layer, Resolved

SUFFIXES = (".yaml", ".yml", ".json")


class Catalog:
    """Personas in an ordered list of directories. Documents are loaded once and cached."""

    def __init__(self, dirs: Iterable[str | Path] = ()) -> None:
        self.dirs: list[Path] = []
        for d in dirs:
            self.add(d)
        self._docs: dict[Path, Document] = {}
        self._by_name: dict[str, Path] | None = None

    def add(self, directory: str | Path) -> None:
        p = Path(directory)
        if p not in self.dirs:
            self.dirs.append(p)
            self._by_name = None

    def files(self) -> list[Path]:
        out: list[Path] = []
        for d in self.dirs:
            if d.is_dir():
                out.extend(sorted(p for p in d.iterdir() if p.suffix in SUFFIXES and p.is_file()))
        return out

    def loaded(self) -> list[Path]:
        """Every persona file read so far (what a plan's answer rests on)."""
        return list(self._docs)

    def load(self, path: Path) -> Document:
        doc = self._docs.get(path)
        if doc is None:
            doc = self._docs[path] = load_file(path)
        return doc

    def path_of(self, name: str, first: Sequence[Path] = ()) -> Path | None:
        for d in [*first, *self.dirs]:
            for stem in (name, f"persona_{name}"):
                for suffix in SUFFIXES:
                    candidate = d / f"{stem}{suffix}"
                    if candidate.is_file():
                        return candidate
        return self._index().get(name)

    def _index(self) -> dict[str, Path]:
        if self._by_name is None:
            self._by_name = {}
            for path in self.files():
                try:
                    doc = self.load(path)
                except SpecError:
                    continue  # reported when that file itself is used
                self._by_name.setdefault(doc.name, path)
        return self._by_name

    def names(self) -> dict[str, Path]:
        """Every valid persona in the search path, by name."""
        return dict(self._index())

    def find(self, name: str, child: Layer | None = None) -> Layer:
        """The persona called ``name`` as a layer, searching next to ``child`` first."""
        first = [Path(child.label).parent] if child is not None and child.where else []
        path = self.path_of(name, first)
        if path is None:
            places = ", ".join(str(d) for d in [*first, *self.dirs]) or "no directories"
            message = f"persona {name!r} not found (looked in {places})"
            if child is not None:
                raise PersonaNotFound([child.problem(("extends",), message)])
            raise PersonaNotFound([Problem(name, 0, 0, (), message)])
        doc = self.load(path)
        if doc.name != name and path.stem not in (name, f"persona_{name}"):
            raise PersonaNotFound(
                [Problem(str(path), 0, 0, (), f"declares name {doc.name!r}, not {name!r}")]
            )
        return Layer.of(doc, "persona")

    def resolve(
        self,
        doc: Document,
        overlays: Iterable[Document] = (),
        customizations: dict[str, object] | None = None,
    ) -> Resolved:
        """Resolve ``doc`` with parents from this catalog."""
        return resolve(doc, self.find, overlays, customizations)
